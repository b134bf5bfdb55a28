"""`erm`: empirical risk minimization, the baseline every fairness method is compared with.

The multi-task detector with the heads the config weights (usually only real/fake), the mean
loss, and whatever update the optimizer config names (plain by default; `optimizer.name: sam`
gives ERM+SAM). This file is the smallest complete method: copy it to start a new one.
"""

from __future__ import annotations

import torch
from torch import nn

from fairforge.config.train import TrainConfig
from fairforge.train.data import DataInfo
from fairforge.train.detector import MultiTaskDetector

from . import register_method
from .base import Batch, Method, StepContext, StepLogs


@register_method("erm")
class ERM(Method):
    def build_model(self, cfg: TrainConfig, info: DataInfo) -> nn.Module:
        return MultiTaskDetector.from_config(cfg.model, len(info.genders), len(info.races), info.num_groups)

    def training_step(self, ctx: StepContext, batch: Batch) -> StepLogs:
        detector = ctx.unwrapped

        def loss_fn() -> dict[str, torch.Tensor]:
            return detector.losses(batch, ctx.model(batch))

        return ctx.update(loss_fn)

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return MultiTaskDetector.prob_fake(model(batch))
