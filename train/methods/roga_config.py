"""`roga:` settings (Qiu et al., ICME 2025): per-domain ascent gradients aligned with the ERM gradient."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fairforge.config.base import StrictModel

from . import register_config


@register_config("roga")
class RoGAConfig(StrictModel):
    rho: float = Field(0.05, gt=0.0, description="radius of each domain's ascent step")
    align: Literal["pcgrad", "sign", "none"] = Field(
        "pcgrad",
        description="pcgrad: remove the component of h_k along g when it opposes g; sign: keep only the coordinates "
        "of h_k whose sign agrees with g; none: plain per-domain ascent gradients",
    )
    weight: float = Field(1.0, ge=0.0, description="update = g + weight * mean_k aligned h_k")
    reals: Literal["shared", "own_domain"] = Field(
        "shared",
        description="shared: a domain is one manipulation type's fakes plus every real of the batch (domain "
        "generalization's convention); own_domain: the reals form a one-class domain of their own",
    )
