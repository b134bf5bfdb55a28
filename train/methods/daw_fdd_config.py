"""`daw_fdd:` settings (Ju et al., WACV 2024): CVaR within each intersectional group, CVaR over the groups."""

from __future__ import annotations

from pydantic import Field

from fairforge.config.base import StrictModel

from . import register_config
from .dag_fdd_config import FairLossMode


@register_config("daw_fdd")
class DAWFDDConfig(StrictModel):
    inner_alpha: float = Field(0.9, gt=0.0, le=1.0, description="CVaR level within a group")
    outer_alpha: float = Field(0.5, gt=0.0, le=1.0, description="CVaR level over the groups present")
    fair_loss: FairLossMode = Field(
        "paper",
        description="paper: exact CVaRs; reference: the authors' code, whose searched thresholds give each "
        "boundary sample the full weight 1/(alpha n)",
    )
