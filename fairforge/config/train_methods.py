"""Config sections of the published fair-detection methods (`dag_fdd:`, `daw_fdd:`, `pg_fdd:`, `roga:`).

Each method reads only its own section, so a config file for one method can leave the others at
their defaults; the defaults are the published values (see train/METHODS.md for the sources).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class DAGFDDConfig(StrictModel):
    """DAG-FDD (Ju et al., WACV 2024): CVaR of the per-sample losses, no demographic labels needed."""

    alpha: float = Field(0.5, gt=0.0, le=1.0, description="fraction of the worst per-sample losses averaged")


class DAWFDDConfig(StrictModel):
    """DAW-FDD (Ju et al., WACV 2024): CVaR within each intersectional group, CVaR over the groups."""

    inner_alpha: float = Field(0.9, gt=0.0, le=1.0, description="CVaR level within a group")
    outer_alpha: float = Field(0.5, gt=0.0, le=1.0, description="CVaR level over the groups present")


class PGFDDLossWeights(StrictModel):
    """Weights of PG-FDD's losses; the shared-head real/fake loss has weight 1."""

    spe: float = Field(0.1, ge=0.0, description="domain-specific head (real + each manipulation)")
    rec: float = Field(0.3, ge=0.0, description="the four L1 reconstruction terms")
    con: float = Field(0.05, ge=0.0, description="triplet contrastive loss")
    dem: float = Field(0.1, ge=0.0, description="LDAM loss of the demographic (intersectional group) head")
    fuse: float = Field(1.0, ge=0.0, description="bi-level fairness loss of the fused head")


class PGFDDConfig(StrictModel):
    """PG-FDD (Lin et al., CVPR 2024): disentangled features, fused fair head, LDAM, SAM."""

    feat_dim: int = Field(512, gt=0, multiple_of=16, description="encoder output channels (published: 512)")
    weights: PGFDDLossWeights = PGFDDLossWeights()
    inner_alpha: float = Field(0.9, gt=0.0, le=1.0)
    outer_alpha: float = Field(0.5, gt=0.0, le=1.0)
    tau1: float = Field(1e-3, gt=0.0, description="softplus temperature of the smoothed outer CVaR")
    tau2: float = Field(1e-4, gt=0.0, description="quadratic regularizer of the smoothed outer CVaR's lambda")
    ldam_max_margin: float = Field(0.5, gt=0.0)
    ldam_scale: float = Field(30.0, gt=0.0)
    triplet_margin: float = Field(3.0, ge=0.0)


class RoGAConfig(StrictModel):
    """RoGA (Qiu et al., ICME 2025): per-domain ascent gradients aligned with the ERM gradient."""

    rho: float = Field(0.05, gt=0.0, description="radius of each domain's ascent step")
    align: Literal["pcgrad", "sign", "none"] = Field(
        "pcgrad",
        description="pcgrad: remove the component of h_k along g when it opposes g; sign: keep only the coordinates "
        "of h_k whose sign agrees with g; none: plain per-domain ascent gradients",
    )
    weight: float = Field(1.0, ge=0.0, description="update = g + weight * mean_k aligned h_k")


__all__ = ["DAGFDDConfig", "DAWFDDConfig", "PGFDDConfig", "PGFDDLossWeights", "RoGAConfig"]
