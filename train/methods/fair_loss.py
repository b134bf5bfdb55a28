"""The shared shape of DAG-FDD and DAW-FDD: ERM with its real/fake loss replaced by a fair aggregate.

Not a method itself (nothing registers it): `dag_fdd.py` and `daw_fdd.py` subclass it and define
`fair_loss`, a robust aggregate (a CVaR) of the per-sample BCE losses, logged as `fair`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fairforge.config.train import TrainConfig
from fairforge.train.detector import MultiTaskDetector

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
