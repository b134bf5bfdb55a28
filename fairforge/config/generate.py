"""Config of the generate stage (`generate:` in pipelines.yaml). Owned by the generate issue."""

from __future__ import annotations

from .base import StrictModel


class GenerateConfig(StrictModel):
    """Placeholder until the generate stage is built: the number of images per cell."""

    count_per_cell: int = 2
