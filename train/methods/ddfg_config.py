"""`ddfg:` settings: none. The recipe is the shared sections (SAM, demographic heads, balanced data),
which `DDFG.check_config` enforces."""

from __future__ import annotations

from fairforge.config.base import StrictModel

from . import register_config


@register_config("ddfg")
class DDFGConfig(StrictModel):
    """DDFG has no settings of its own."""
