"""Config of the evaluate stage (`evaluate:` in pipelines.yaml).

The CLI flags of `fairforge evaluate` take their defaults from here, so a pipeline run and a
hand-run command compute the same report.
"""

from __future__ import annotations

from pydantic import Field

from .base import StrictModel
from .taxonomy import TaxonomyConfig


class EvaluateConfig(StrictModel):
    """How predictions are scored and reported."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="predicted fake when score >= threshold")
    bootstrap: int = Field(1000, ge=0, description="stratified bootstrap resamples for the intervals (0: none)")
    seed: int = Field(0, description="seed of the bootstrap resamples")
    ci_level: float = Field(0.95, gt=0.0, lt=1.0, description="level of the bootstrap intervals")
    bootstrap_bins: int = Field(
        256, ge=2, description="score bins of the bootstrap; exact when the scores take at most this many values"
    )
    intra: str | list[str] | None = Field(
        None, description="the sources the model was trained on (the rest are cross); default: the first file's"
    )
    min_group_n: int = Field(30, ge=1, description="groups with fewer rows are named in a warning")
    plots: bool = Field(True, description="write PNG and SVG plots and embed them in report.html")
    taxonomy: TaxonomyConfig = Field(TaxonomyConfig(), description="the groups reported (the pipeline's)")
