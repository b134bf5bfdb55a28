"""The README's pipeline end to end on the tiny preset, from a fresh copy of the repository.

The copy holds exactly the files git tracks (what a fresh clone has), so the run cannot lean on
anything left in this working tree; the tiny models are built from scratch in an empty cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import assert_looks_like_a_report, screenshot

from fairforge.manifest import read_manifest
from fairforge.pipeline.preflight import missing_pieces
from fairforge.pipeline.runner import select_stages

REPO = Path(__file__).resolve().parents[1]
STAGES = ["import", "generate", "balance", "release", "train", "predict", "evaluate"]


def fresh_copy(dest: Path) -> Path:
    """The tracked files of this checkout, as a fresh clone would have them."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return dest


def run_pipeline(clone: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAIRFORGE_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "fairforge", "pipeline", "run", "pipelines.yaml", "--preset", "tiny"]
    return subprocess.run(
        [*command, "--out", str(out), *extra], cwd=clone, env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("pipeline")
    clone = fresh_copy(root / "clone")
    out, cache = root / "run", root / "cache"
    first = run_pipeline(clone, out, cache)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    return clone, out, cache, first


@pytest.mark.slow
def test_every_stage_writes_outputs_that_validate(tiny_run):
    _, out, _, first = tiny_run
    assert f"report: {out}/report.html" in first.stdout
    generated = read_manifest(out / "generate", check_files=True)
    assert set(generated["method"]) == {"diffusion", "sbi", "sbi_target", "inswapper"}
    assert generated["seed"].notna().all() and generated["sha256"].notna().all()
    balanced = read_manifest(out / "balance", check_files=True)
    audit = json.loads((out / "balance" / "audit.json").read_text())
    assert (
        set(audit) >= {"probes", "pairs", "sources"}
        and "Label-shortcut audit" in (out / "balance" / "report.md").read_text()
    )
    assert "## Label-shortcut audit" in (out / "release" / "README.md").read_text()
    assert (out / "release" / "README.md").is_file() and list((out / "release" / "data").glob("test-*.parquet"))
    assert (out / "train" / "run" / "final" / "model.safetensors").is_file()
    import pandas as pd

    predictions = pd.read_parquet(out / "predict" / "fairforge-synth.parquet")
    assert len(predictions) == (balanced["split"] == "test").sum()
    assert predictions["score"].between(0, 1).all()
    report = json.loads((out / "evaluate" / "report.json").read_text())
    assert report["n"] == len(predictions) and "intersectional" in report["fairness"]
    for stage in STAGES[1:]:
        assert (out / stage / ".stage.json").is_file(), stage
    summary = (out / "report.md").read_text()
    assert "## The balanced set" in summary and "## Evaluation" in summary and "## Training" in summary
    assert "panels: train/loss, val/auc, val/F_FPR" in summary  # TensorBoard is on in the tiny recipe
    sheets = list((out / "balance" / "report" / "contact").glob("*.png"))
    assert len(sheets) >= 8 and summary.count("](balance/report/contact/") == len(sheets)  # every cell's sheet
    # the tiny run's 2 rows per group and one predicted class are flagged, not reported as fairness
    assert {"small_groups", "single_predicted_class"} <= {w["kind"] for w in report["warnings"]}
    assert report["ci"]["resamples"] == 1000 and 0 < report["video"]["n"] <= len(predictions)
    generate_log = (out / "generate" / "log.txt").read_text()
    assert "--no-progress" not in generate_log and "diffusion: 100%" in generate_log


@pytest.mark.slow
def test_second_run_skips_every_stage(tiny_run):
    clone, out, cache, _ = tiny_run
    again = run_pipeline(clone, out, cache)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    for stage in STAGES[1:]:
        assert f"[{stage}] up to date, skipped" in again.stdout
    assert "0 stage(s) ran" in again.stdout


@pytest.mark.slow
def test_forcing_a_stage_reruns_only_it(tiny_run):
    clone, out, cache, _ = tiny_run
    forced = run_pipeline(clone, out, cache, "--from", "predict", "--force", "evaluate")
    assert forced.returncode == 0, forced.stdout[-4000:]
    assert "[predict] up to date, skipped" in forced.stdout and "[evaluate] done" in forced.stdout


@pytest.mark.slow
def test_run_report_renders_in_a_browser(tiny_run, tmp_path):
    _, out, _, _ = tiny_run
    assert_looks_like_a_report(screenshot(out / "report.html", tmp_path / "run-report.png"))


#: A fifth race split off FairFace's `Others` (one age bin keeps the run as small as the default one).
FIVE_RACES = (
    "taxonomy.races=[Asian, White, Black, Indian, Others]",
    "taxonomy.race_map={White: White, Black: Black, East Asian: Asian, Southeast Asian: Asian, Indian: Indian,"
    " Latino_Hispanic: Others, Middle Eastern: Others}",
    "generate.prompt.race_words={Asian: [East Asian, Chinese], White: [white, European], Black: [Black, African],"
    " Indian: [Indian, South Asian], Others: [Middle Eastern, Latino]}",
    "generate.ages=[20-29]",
)


@pytest.mark.slow
def test_a_custom_taxonomy_runs_through_evaluate(tmp_path):
    clone = fresh_copy(tmp_path / "clone")
    out = tmp_path / "run"
    extra = [item for override in FIVE_RACES for item in ("--set", override)]
    result = run_pipeline(clone, out, tmp_path / "cache", *extra)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    balanced = read_manifest(out / "balance", check_files=True, taxonomy=_five_races())
    assert "Indian" in set(balanced["race"])
    report = json.loads((out / "evaluate" / "report.json").read_text())
    assert "male-Indian" in report["groups"]["intersectional"] and "Indian" in report["groups"]["race"]
    import pandas as pd

    predictions = pd.read_parquet(out / "predict" / "fairforge-synth.parquet")
    assert report["n"] == len(predictions) and "Indian" in set(predictions["race"])


def _five_races():
    from fairforge.config import load_pipeline_config

    return load_pipeline_config(REPO / "pipelines.yaml", "tiny", FIVE_RACES).taxonomy.build()


def test_stage_selection_and_unknown_stage():
    assert select_stages(STAGES, "balance", "train") == ["balance", "release", "train"]
    with pytest.raises(Exception, match="--from 'nope': not a stage"):
        select_stages(STAGES, "nope", None)


def test_full_preset_lists_every_missing_piece_up_front():
    from fairforge.config import load_pipeline_config

    cfg = load_pipeline_config(REPO / "pipelines.yaml", preset="full")
    missing = missing_pieces(
        cfg.model_dump(mode="json", by_alias=True), type(cfg)().model_dump(mode="json", by_alias=True)
    )
    keys = {line.split(":", 1)[0] for line in missing}
    assert {"generate.inswapper.model", "balance.classifiers[0].path"} <= keys
    assert all("is missing (" in line for line in missing)
    tiny = load_pipeline_config(REPO / "pipelines.yaml", preset="tiny")
    assert (
        missing_pieces(tiny.model_dump(mode="json", by_alias=True), type(tiny)().model_dump(mode="json", by_alias=True))
        == []
    )


def test_readme_commands_are_the_ones_ci_and_quickstart_run():
    readme = (REPO / "README.md").read_text()
    assert "bash quickstart.sh" in readme and ".venv/bin/python -m pytest -q" in readme
    assert ".venv/bin/python -m pytest -q" in (REPO / ".ci" / "run").read_text()
    quickstart = (REPO / "quickstart.sh").read_text()
    assert "scripts/setup.sh" in quickstart and "pipeline run pipelines.yaml --preset tiny" in quickstart
    for script in ("quickstart.sh", "scripts/setup.sh", ".ci/run"):
        subprocess.run(["bash", "-n", str(REPO / script)], check=True)
