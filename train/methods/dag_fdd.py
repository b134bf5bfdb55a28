"""`dag_fdd`: demographic-agnostic fair training (Ju et al., "Improving Fairness in Deepfake Detection", WACV 2024).

DAG-FDD needs no demographic labels: it minimizes CVaR_alpha of the per-sample real/fake losses, the
mean of the alpha-fraction worst samples in each batch (alpha `dag_fdd.alpha`, 0.5). Whatever group
the detector fails on, its samples are among the worst and get the weight; the batch mean of ERM
would let a small group's errors drown. The network is ERM's multi-task detector; any demographic
heads the config weights keep their usual mean losses. CVaR is computed exactly by sorting
(`fairforge.train.losses.cvar`), where the published code searched lambda with scipy on the CPU.

`FairLossMethod` is the shared shape of DAG-FDD and DAW-FDD: ERM with the real/fake term of the loss
replaced by a robust aggregate of the per-sample losses.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fairforge.config.train import TrainConfig
from fairforge.train.detector import MultiTaskDetector
from fairforge.train.losses import cvar

from . import register_method
from .base import Batch, StepContext, StepLogs
from .erm import ERM


class FairLossMethod(ERM):
    """ERM whose real/fake loss is `fair_loss` of the per-sample BCE losses (logged as `fair`)."""

    @abstractmethod
    def fair_loss(self, per_sample: torch.Tensor, batch: Batch, cfg: TrainConfig, num_groups: int) -> torch.Tensor: ...

    def losses(
        self,
        detector: MultiTaskDetector,
        batch: Batch,
        out: Mapping[str, torch.Tensor],
        cfg: TrainConfig,
        num_groups: int,
    ) -> dict[str, torch.Tensor]:
        losses = detector.losses(batch, out)
        per_sample = F.binary_cross_entropy_with_logits(out["logits"].float(), batch["label"].float(), reduction="none")
        losses["fair"] = self.fair_loss(per_sample, batch, cfg, num_groups)
        weights = detector.weights
        losses["overall"] = weights.get("cls", 0.0) * losses["fair"] + sum(
            weight * losses[name] for name, weight in weights.items() if name != "cls"
        )
        return losses

    def training_step(self, ctx: StepContext, batch: Batch) -> StepLogs:
        detector = ctx.unwrapped

        def loss_fn() -> dict[str, torch.Tensor]:
            return self.losses(detector, batch, ctx.model(batch), ctx.config, ctx.info.num_groups)

        return ctx.update(loss_fn)


@register_method("dag_fdd")
class DAGFDD(FairLossMethod):
    def fair_loss(self, per_sample: torch.Tensor, batch: Batch, cfg: TrainConfig, num_groups: int) -> torch.Tensor:
        return cvar(per_sample, cfg.dag_fdd.alpha)
