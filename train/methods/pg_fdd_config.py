"""`pg_fdd:` settings (Lin et al., CVPR 2024): disentangled features, fused fair head, LDAM, SAM.

The defaults are the published values (train/METHODS.md names the sources).
"""

from __future__ import annotations

from pydantic import Field

from fairforge.config.base import StrictModel

from . import register_config
from .dag_fdd_config import FairLossMode


class PGFDDLossWeights(StrictModel):
    """Weights of PG-FDD's losses; the shared-head real/fake loss has weight 1."""

    spe: float = Field(0.1, ge=0.0, description="domain-specific head (real + each manipulation)")
    rec: float = Field(0.3, ge=0.0, description="the four L1 reconstruction terms")
    con: float = Field(0.05, ge=0.0, description="triplet contrastive loss")
    dem: float = Field(0.1, ge=0.0, description="LDAM loss of the demographic (intersectional group) head")
    fuse: float = Field(1.0, ge=0.0, description="bi-level fairness loss of the fused head")


@register_config("pg_fdd")
class PGFDDConfig(StrictModel):
    feat_dim: int = Field(512, gt=0, multiple_of=16, description="encoder output channels (published: 512)")
    weights: PGFDDLossWeights = PGFDDLossWeights()
    inner_alpha: float = Field(0.9, gt=0.0, le=1.0)
    outer_alpha: float = Field(0.5, gt=0.0, le=1.0)
    tau1: float = Field(1e-3, gt=0.0, description="softplus temperature of the smoothed outer CVaR")
    tau2: float = Field(1e-4, gt=0.0, description="quadratic regularizer of the smoothed outer CVaR's lambda")
    fair_loss: FairLossMode = Field(
        "paper",
        description="paper: the fused loss at its exact minimizing lambdas; reference: the authors' code's numbers "
        "(float32 overflow confines the outer lambda to >= max group loss - 88.72 tau1; boundary samples of the "
        "inner CVaR get the full weight)",
    )
    ldam_max_margin: float = Field(0.5, gt=0.0)
    ldam_scale: float = Field(30.0, gt=0.0)
    triplet_margin: float = Field(3.0, ge=0.0)
