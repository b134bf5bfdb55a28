"""The run report from stage outputs laid out as a run leaves them, checked element by element and in Chromium.

The run folder is built in memory-sized pieces (a balanced manifest, balance's contact sheets, a
trainer_state history, TensorBoard events, a real `fairforge evaluate` output over three
sources), so the report's reading of each stage's files is tested in seconds, without the
pipeline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from browser import assert_looks_like_a_report, screenshot
from PIL import Image

from fairforge.config.evaluate import EvaluateConfig
from fairforge.evaluate.metrics import FAIRNESS_METRICS
from fairforge.evaluate.run import evaluate_files
from fairforge.pipeline.report import write_run_report
from fairforge.taxonomy import DEFAULT_TAXONOMY

SOURCES = (("fairforge-synth", 0.3), ("ffpp", 0.15), ("celebdf", 0.08))


def _balanced_set(run: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for gender in DEFAULT_TAXONOMY.genders:
        for race in DEFAULT_TAXONOMY.races:
            for method, label in (("diffusion", 0), ("sbi", 1), ("inswapper", 1)):
                for split in ("train", "test"):
                    rows += [{"gender": gender, "race": race, "label": label, "split": split, "method": method}] * 3
    frame = pd.DataFrame(rows).assign(source="fairforge-synth")
    (run / "balance").mkdir(parents=True)
    frame.to_parquet(run / "balance" / "manifest.parquet")
    contact = run / "balance" / "report" / "contact"
    contact.mkdir(parents=True)
    for i, (gender, race) in enumerate((g, r) for g in DEFAULT_TAXONOMY.genders for r in DEFAULT_TAXONOMY.races):
        pixels = rng.integers(0, 255, (60, 240, 3), dtype=np.uint8)
        pixels[:, : 30 * (i + 1)] = (40 * i % 255, 90, 200)
        Image.fromarray(pixels).save(contact / f"{gender}-{race}.png")
    Image.fromarray(np.full((80, 120, 3), (200, 60, 60), dtype=np.uint8)).save(
        run / "balance" / "report" / "acceptance.png"
    )


def _training(run: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    history = [
        {
            "epoch": e,
            "step": 10 * (e + 1),
            "val/auc": 0.6 + 0.1 * e,
            **{f"val/{m}": 20.0 - 3 * e for m in FAIRNESS_METRICS},
        }
        for e in range(3)
    ]
    state = run / "train" / "run" / "checkpoints" / "step_30" / "trainer_state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"trainer": {"history": history}}))
    writer = SummaryWriter(str(run / "train" / "run" / "fairforge-train"))
    for step in range(1, 31):
        writer.add_scalar("train/overall", 1.0 / step, step)
    writer.close()


def _evaluation(run: Path, tmp: Path) -> None:
    paths = []
    for i, (source, shift) in enumerate(SOURCES):
        rng = np.random.default_rng(i)
        n = 600
        frame = pd.DataFrame(
            {
                "label": rng.integers(0, 2, n),
                "gender": rng.choice(DEFAULT_TAXONOMY.genders, n),
                "race": rng.choice(DEFAULT_TAXONOMY.races, n),
                "source": source,
            }
        )
        frame["score"] = np.clip(rng.normal(0.5 + shift * (2 * frame["label"] - 1), 0.2), 0, 1)
        paths.append(tmp / f"{source}.parquet")
        frame.to_parquet(paths[-1])
    evaluate_files(paths, run / "evaluate", EvaluateConfig(bootstrap=100, intra="fairforge-synth"))


@pytest.fixture(scope="module")
def run_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    run = tmp_path_factory.mktemp("run")
    _balanced_set(run)
    _training(run)
    _evaluation(run, tmp_path_factory.mktemp("predictions"))
    results = [SimpleNamespace(name=n, status="ran", seconds=1.5) for n in ("balance", "train", "evaluate")]
    page = write_run_report(SimpleNamespace(run_dir=run, preset="tiny"), results)
    return run, page.read_text(), (run / "report.md").read_text()


def test_the_gap_table_has_a_row_per_cross_source_and_the_mean_with_intervals(run_report):
    run, html, md = run_report
    report = json.loads((run / "evaluate" / "report.json").read_text())
    assert "Fairness generalization gap (cross minus intra)" in md
    for source in ("ffpp", "celebdf"):
        gap = report["by_source"]["gap"]["per_source"][source]["F_FPR"]
        low, high = report["ci"]["gap"]["per_source"][source]["F_FPR"]
        assert re.search(rf"\| {source} - fairforge-synth \|.*{gap:.3f} \[{low:.3f}, {high:.3f}\]", md)
    assert re.search(r"\| mean cross - fairforge-synth \| -?\d+\.\d{3} \[", md)


def test_evaluation_is_per_source_with_plots_and_the_pooled_table_is_labelled(run_report):
    _, html, md = run_report
    for source, role in (("fairforge-synth", "intra"), ("ffpp", "cross"), ("celebdf", "cross")):
        assert f"Source {source} ({role})" in md
        assert f'alt="{source} groups"' in html
    assert "Pooled: all test sets together" in md
    assert 'alt="intra vs cross"' in html and 'alt="pooled roc"' in html
    assert "Brackets: 95% intervals, 100 resamples" in md


def test_training_curves_show_loss_val_auc_and_every_fairness_metric(run_report):
    run, html, _ = run_report
    panels = ["train/loss", "val/auc", *(f"val/{m}" for m in FAIRNESS_METRICS)]
    assert f"panels: {', '.join(panels)}" in html
    assert (run / "training_curves.png").stat().st_size > 10_000 and (run / "training_curves.svg").is_file()


def test_every_cells_contact_sheet_in_a_grid_and_the_method_column(run_report):
    _, html, md = run_report
    grid = html.split('<div class="sheets">', 1)[1].split("</div>", 1)[0]
    assert grid.count("<img") == 8
    assert "| cell |" in md and "| method |" in md
    assert "diffusion 6, inswapper 6, sbi 6" in md


def test_run_report_renders_in_headless_chromium(run_report, tmp_path):
    run, _, _ = run_report
    pixels = screenshot(run / "report.html", tmp_path / "run.png", size=(1200, 9000))
    assert_looks_like_a_report(pixels[:2000])
    # images all the way down the page: the contact grid, the curves and the evaluation plots
    rich = [len(np.unique(band.reshape(-1, 3), axis=0)) > 300 for band in np.array_split(pixels, 18)]
    assert sum(rich) >= 10, rich
