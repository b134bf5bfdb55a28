"""Run the stages of pipelines.yaml in order, each as its own process, skipping what is up to date.

Why subprocesses: stages talk only through manifests and files on disk (DESIGN.md section 1), and
each stage's CLI is the contract a user also calls by hand; running exactly those commands means
the pipeline can never depend on a stage's internals, a crashed stage cannot corrupt the runner,
and `train` can go through `accelerate launch` like any training job. Each stage writes under
`RUN_DIR/<stage>/`, its log to `RUN_DIR/<stage>/log.txt`, and a fingerprint of its config and
inputs (state.py) that lets a rerun skip it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairforge.config import PipelineConfig, load_pipeline_config
from fairforge.errors import ConfigError, FairforgeError
from fairforge.paths import claim_output

from . import state
from .process import run_command, run_lock, sweep_scratch

log = logging.getLogger(__name__)


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


#: name -> Stage, in pipeline order; stages.py registers them.
STAGES: dict[str, Stage] = {}


def register_stage(
    name: str, help: str
) -> Callable[[Callable[[StageContext], StagePlan]], Callable[[StageContext], StagePlan]]:
    def wrap(plan: Callable[[StageContext], StagePlan]) -> Callable[[StageContext], StagePlan]:
        STAGES[name] = Stage(name, plan, help)
        return plan

    return wrap


@dataclass
class StageResult:
    name: str
    status: str  # ran | skipped (up to date) | skipped (reason) | failed
    seconds: float
    log: Path | None = None


def select_stages(order: Sequence[str], from_: str | None, to: str | None) -> list[str]:
    names = list(order)
    for flag, value in (("--from", from_), ("--to", to)):
        if value is not None and value not in names:
            raise ConfigError(f"{flag} {value!r}: not a stage of this pipeline; expected one of {names}")
    start = names.index(from_) if from_ else 0
    stop = names.index(to) + 1 if to else len(names)
    return names[start:stop]


def run_pipeline(
    config_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str = "tiny",
    overrides: Sequence[str] = (),
    from_: str | None = None,
    to: str | None = None,
    force: Sequence[str] = (),
) -> list[StageResult]:
    """Run (or skip) every selected stage; raise `FairforgeError` naming the stage that failed.

    The run folder is fairforge's (an owner marker) and locked for the whole run; each stage runs
    in its own process group, ended if the pipeline is stopped.
    """
    config_path = Path(config_path).resolve()
    run_dir = Path(out).resolve()
    claim_output(run_dir, "pipeline run")
    with run_lock(run_dir):
        return _run_locked(config_path, run_dir, preset, overrides, from_, to, force)


def _run_locked(
    config_path: Path,
    run_dir: Path,
    preset: str,
    overrides: Sequence[str],
    from_: str | None,
    to: str | None,
    force: Sequence[str],
) -> list[StageResult]:
    from . import stages as _stages  # noqa: F401  (registers the stages)

    cfg = load_pipeline_config(config_path, preset=preset, overrides=overrides)
    ctx = StageContext(config_path, preset, list(overrides), cfg, run_dir)
    unknown = [name for name in cfg.stages if name not in STAGES]
    if unknown:
        raise ConfigError(f"stages: {unknown} have no runner; expected some of {list(STAGES)}")
    for name in force:
        if name not in STAGES:
            raise ConfigError(f"--force {name!r}: not a stage; expected one of {list(STAGES)}")
    from .preflight import check_required

    check_required(ctx)

    results: list[StageResult] = []
    for name in select_stages(cfg.stages, from_, to):
        stage_dir = ctx.stage_dir(name)
        # claimed before planning: a plan may write into its folder (train writes its config there)
        claim_output(stage_dir, f"pipeline run ({name})")
        plan = STAGES[name].plan(ctx)
        if plan.skip_reason:
            print(f"[{name}] skipped: {plan.skip_reason}")
            results.append(StageResult(name, f"skipped ({plan.skip_reason})", 0.0))
            continue
        fp = state.fingerprint(plan.config, plan.inputs)
        outputs_there = all(p.exists() for p in plan.outputs)
        if name not in force and outputs_there and state.is_current(stage_dir, fp):
            print(f"[{name}] up to date, skipped")
            results.append(StageResult(name, "skipped (up to date)", 0.0, stage_dir / "log.txt"))
            continue
        for leftover in sweep_scratch(stage_dir):
            log.info("%s: removed %s (left by an interrupted run)", name, leftover)
        log_file = stage_dir / "log.txt"
        log_file.write_text("")
        print(f"[{name}] running ({STAGES[name].help})")
        start = time.perf_counter()
        for command in plan.commands:
            code = run_command(command, log_file, plan.env)
            if code != 0:
                results.append(StageResult(name, "failed", time.perf_counter() - start, log_file))
                _write_summary(ctx, results)
                raise FairforgeError(f"stage {name!r} failed (exit {code}); its log is {log_file}")
        missing = [str(p) for p in plan.outputs if not p.exists()]
        if missing:
            raise FairforgeError(f"stage {name!r} finished but did not write {missing}; its log is {log_file}")
        seconds = time.perf_counter() - start
        state.record(stage_dir, fp, seconds, [str(p) for p in plan.outputs])
        print(f"[{name}] done in {seconds:.1f} s")
        results.append(StageResult(name, "ran", seconds, log_file))
    _write_summary(ctx, results)
    return results


def _write_summary(ctx: StageContext, results: list[StageResult]) -> None:
    from .report import write_run_report

    write_run_report(ctx, results)
