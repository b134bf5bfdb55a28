"""`daw_fdd`: demographic-aware fair training (Ju et al., "Improving Fairness in Deepfake Detection", WACV 2024).

DAW-FDD uses the intersectional group of each sample (`group`: gender x race) in a bi-level CVaR:
inside each group, the mean of its `daw_fdd.inner_alpha` (0.9) worst losses; over the groups present
in the batch, the mean of the `daw_fdd.outer_alpha` (0.5) worst group values. The outer level
pushes the worst-served groups up, the inner level keeps each group's own hard samples in view.
Samples of unknown group are left out of the loss; groups absent from the batch are skipped, not
counted as zero. Both levels are exact sorted means (`fairforge.train.losses.bilevel_cvar`), one
vectorized call for all groups, no host synchronization; `daw_fdd.fair_loss: reference` gives the
authors' code's boundary weights instead (train/METHODS.md).
"""

from __future__ import annotations

import torch

from fairforge.config.train import TrainConfig
from fairforge.train.losses import bilevel_cvar

from . import register_method
from .base import Batch
from .fair_loss import FairLossMethod


@register_method("daw_fdd")
class DAWFDD(FairLossMethod):
    def fair_loss(self, per_sample: torch.Tensor, batch: Batch, cfg: TrainConfig, num_groups: int) -> torch.Tensor:
        c = cfg.daw_fdd
        return bilevel_cvar(
            per_sample, batch["group"], num_groups, c.inner_alpha, c.outer_alpha, reference=c.fair_loss == "reference"
        )
