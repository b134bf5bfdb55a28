"""Run the stages of pipelines.yaml in order, each as its own process, skipping what is up to date.

Why subprocesses: stages talk only through manifests and files on disk (docs/architecture.md), and
each stage's CLI is the contract a user also calls by hand; running exactly those commands means
the pipeline can never depend on a stage's internals, a crashed stage cannot corrupt the runner,
and `train` can go through `accelerate launch` like any training job. Each stage writes under
`RUN_DIR/<stage>/`, its log to `RUN_DIR/<stage>/log.txt`, and a fingerprint of its config and
inputs (state.py) that lets a rerun skip it. The stages run in the config file's folder, so a
relative path in pipelines.yaml means the same to every stage and to the preflight check.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from fairforge.config import load_pipeline_config
from fairforge.errors import ConfigError, FairforgeError
from fairforge.paths import claim_output

from . import state
from .process import run_command, run_lock, sweep_scratch
from .stage import STAGES, StageContext, StageResult

log = logging.getLogger(__name__)


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
    cfg = load_pipeline_config(config_path, preset=preset, overrides=overrides)
    ctx = StageContext(config_path, preset, list(overrides), cfg, run_dir)
    unknown = [name for name in cfg.stages if name not in STAGES]
    if unknown:
        raise ConfigError(f"stages: {unknown} have no runner; expected some of {STAGES.names()}")
    for name in force:
        if name not in STAGES:
            raise ConfigError(f"--force {name!r}: not a stage; expected one of {STAGES.names()}")
    from .preflight import check_required

    check_required(ctx)

    results: list[StageResult] = []
    for name in select_stages(cfg.stages, from_, to):
        stage_dir = ctx.stage_dir(name)
        stage = STAGES.get(name, key="stages")
        # claimed before planning: a plan may write into its folder (train writes its config there)
        claim_output(stage_dir, f"pipeline run ({name})")
        plan = stage.plan(ctx)
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
        print(f"[{name}] running ({stage.help})")
        start = time.perf_counter()
        for command in plan.commands:
            code = run_command(command, log_file, plan.env, cwd=ctx.config_path.parent)
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
