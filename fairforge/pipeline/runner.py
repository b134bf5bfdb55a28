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
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fairforge.config import load_pipeline_config
from fairforge.errors import ConfigError, FairforgeError

from . import state
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


def _run_command(command: list[str], log_file: Path, env: dict[str, str], cwd: Path | None = None) -> int:
    """Run one command in `cwd`, teeing its output to the console and the stage's log."""
    full_env = {**os.environ, **env}
    command = [str(part) for part in command]
    with open(log_file, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, text=True, bufsize=1, cwd=cwd
        )
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            sys.stdout.write("  | " + line)
        return process.wait()


def run_pipeline(
    config_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str = "tiny",
    overrides: Sequence[str] = (),
    from_: str | None = None,
    to: str | None = None,
    force: Sequence[str] = (),
) -> list[StageResult]:
    """Run (or skip) every selected stage; raise `FairforgeError` naming the stage that failed."""
    config_path = Path(config_path).resolve()
    cfg = load_pipeline_config(config_path, preset=preset, overrides=overrides)
    run_dir = Path(out).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
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
        stage_dir.mkdir(parents=True, exist_ok=True)
        log_file = stage_dir / "log.txt"
        log_file.write_text("")
        print(f"[{name}] running ({stage.help})")
        start = time.perf_counter()
        for command in plan.commands:
            code = _run_command(command, log_file, plan.env, cwd=ctx.config_path.parent)
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
