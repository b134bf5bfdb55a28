"""`dag_fdd`: demographic-agnostic fair training (Ju et al., "Improving Fairness in Deepfake Detection", WACV 2024).

DAG-FDD needs no demographic labels: it minimizes CVaR_alpha of the per-sample real/fake losses, the
mean of the alpha-fraction worst samples in each batch (alpha `dag_fdd.alpha`, 0.5). Whatever group
the detector fails on, its samples are among the worst and get the weight; the batch mean of ERM
would let a small group's errors drown. The network is ERM's multi-task detector; any demographic
heads the config weights keep their usual mean losses. CVaR is computed exactly by sorting
(`fairforge.train.losses.cvar`), where the authors' code searches lambda with scipy on the CPU;
`dag_fdd.fair_loss: reference` reproduces that search's numbers (train/METHODS.md).
"""

from __future__ import annotations

import torch

from fairforge.config.train import TrainConfig
from fairforge.train.losses import cvar, searched_cvar

from . import register_method
from .base import Batch
from .fair_loss import FairLossMethod


@register_method("dag_fdd")
class DAGFDD(FairLossMethod):
    def fair_loss(self, per_sample: torch.Tensor, batch: Batch, cfg: TrainConfig, num_groups: int) -> torch.Tensor:
        c = cfg.dag_fdd
        return searched_cvar(per_sample, c.alpha) if c.fair_loss == "reference" else cvar(per_sample, c.alpha)
