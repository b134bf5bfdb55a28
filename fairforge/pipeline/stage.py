"""The types every part of the pipeline shares: a stage, its plan, its result, and the stage registry.

Why a module of its own: the runner runs stages, `stages.py` defines them and `report.py`
summarizes their results; all three need these types, and none of them needs the others. A new
stage is a function `plan(ctx) -> StagePlan` registered with `@STAGES.register(name)` in
`stages.py` (and named in `stages:` of pipelines.yaml).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairforge.config import PipelineConfig
from fairforge.registry import Registry


@dataclass
class StageContext:
    """What every stage planner sees: the config (file, preset, overrides and parsed) and the run folder."""

    config_path: Path
    preset: str
    overrides: list[str]
    cfg: PipelineConfig
    run_dir: Path
    python: str = sys.executable

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def fairforge(self, *args: str | os.PathLike[str]) -> list[str]:
        """A `python -m fairforge ...` command line with the pipeline's config and preset."""
        return [self.python, "-m", "fairforge", *map(str, args)]

    def config_args(self) -> list[str]:
        args = ["--config", str(self.config_path), "--preset", self.preset]
        for item in self.overrides:
            args += ["--set", item]
        return args


@dataclass
class StagePlan:
    """What a stage will run, what it reads, what it must leave behind, and the config it depends on."""

    commands: list[list[str]]
    inputs: list[Path]
    outputs: list[Path]
    config: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    skip_reason: str | None = None  # e.g. "no real datasets configured"


@dataclass(frozen=True)
class Stage:
    name: str
    plan: Callable[[StageContext], StagePlan]
    help: str


@dataclass
class StageResult:
    name: str
    status: str  # ran | skipped (up to date) | skipped (reason) | failed
    seconds: float
    log: Path | None = None


#: name -> Stage; `fairforge/pipeline/stages.py` registers the shipped ones on first lookup.
STAGES: Registry[Stage] = Registry("stage", discover="fairforge.pipeline.stages")


def register_stage(
    name: str, help: str
) -> Callable[[Callable[[StageContext], StagePlan]], Callable[[StageContext], StagePlan]]:
    """Register a planner as the stage `name` (`help` is what the runner prints when it runs)."""

    def wrap(plan: Callable[[StageContext], StagePlan]) -> Callable[[StageContext], StagePlan]:
        STAGES.register(name, Stage(name, plan, help))
        return plan

    return wrap


__all__ = ["STAGES", "Stage", "StageContext", "StagePlan", "StageResult", "register_stage"]
