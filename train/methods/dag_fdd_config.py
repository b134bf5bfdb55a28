"""`dag_fdd:` settings (Ju et al., WACV 2024): CVaR of the per-sample losses, no demographic labels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fairforge.config.base import StrictModel

from . import register_config

#: `paper`: the CVaR as the paper defines it (exact, the boundary sample weighted fractionally);
#: `reference`: the authors' code's numbers (see train/METHODS.md and `fairforge.train.losses`).
FairLossMode = Literal["paper", "reference"]


@register_config("dag_fdd")
class DAGFDDConfig(StrictModel):
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="fraction of the worst per-sample losses averaged")
    fair_loss: FairLossMode = Field(
        "paper",
        description="paper: exact CVaR; reference: the authors' code, whose searched threshold gives the boundary "
        "sample the full weight 1/(alpha n)",
    )
