"""A stage is one registered planner: added from this module alone, it runs, is fingerprinted and skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fairforge.config import load_pipeline_config
from fairforge.errors import ConfigError
from fairforge.pipeline.runner import run_pipeline
from fairforge.pipeline.stage import STAGES, StageContext, StagePlan, register_stage


@register_stage("test-greeting", "write a greeting (registered by the test module)")
def plan_greeting(ctx: StageContext) -> StagePlan:
    out = ctx.stage_dir("test-greeting") / "hello.txt"
    code = f"import pathlib; pathlib.Path({str(out)!r}).write_text('hello seed {ctx.cfg.seed}')"
    return StagePlan([[sys.executable, "-c", code]], [], [out], {"seed": ctx.cfg.seed})


def test_a_stage_registered_here_runs_and_is_skipped_when_up_to_date(tmp_path: Path, capsys) -> None:
    config = tmp_path / "pipelines.yaml"
    config.write_text("stages: [test-greeting]\npresets: {tiny: {}}\n")
    first = run_pipeline(config, tmp_path / "run")
    assert [r.status for r in first] == ["ran"]
    assert (tmp_path / "run" / "test-greeting" / "hello.txt").read_text() == "hello seed 0"
    again = run_pipeline(config, tmp_path / "run")
    assert [r.status for r in again] == ["skipped (up to date)"]
    changed = run_pipeline(config, tmp_path / "run", overrides=["seed=3"])
    assert [r.status for r in changed] == ["ran"]
    assert (tmp_path / "run" / "test-greeting" / "hello.txt").read_text() == "hello seed 3"


def test_stage_names_come_from_the_registry() -> None:
    assert {"import", "generate", "balance", "release", "train", "predict", "evaluate"} <= set(STAGES.names())
    with pytest.raises(ConfigError, match=r"stages: Value error, unknown stage\(s\) \['nope'\]; expected some of"):
        load_pipeline_config(Path(__file__).resolve().parents[1] / "pipelines.yaml", "tiny", ["stages=[nope]"])


def test_a_second_stage_under_a_taken_name_is_refused() -> None:
    def other(ctx: StageContext) -> StagePlan:
        return plan_greeting(ctx)

    with pytest.raises(ValueError, match="stage 'test-greeting' is registered twice"):
        register_stage("test-greeting", "another")(other)
    assert STAGES.get("test-greeting").plan is plan_greeting
