"""Config of the evaluate stage (`evaluate:` in pipelines.yaml). Owned by the evaluate issue."""

from __future__ import annotations

from .base import StrictModel


class EvaluateConfig(StrictModel):
    threshold: float = 0.5
    bootstrap: int = 0
