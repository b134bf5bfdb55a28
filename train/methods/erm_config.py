"""`erm:` settings: none. ERM is configured by the shared sections (model, optimizer, data)."""

from __future__ import annotations

from fairforge.config.base import StrictModel

from . import register_config


@register_config("erm")
class ERMConfig(StrictModel):
    """ERM has no settings of its own."""
