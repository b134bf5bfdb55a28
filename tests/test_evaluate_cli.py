"""`fairforge evaluate` end to end: files written, cross-dataset table, bad inputs, the HTML in a browser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import assert_looks_like_a_report, screenshot

from fairforge.cli import main
from fairforge.errors import ManifestError
from fairforge.evaluate import fairness_report, read_predictions
from fairforge.taxonomy import DEFAULT_TAXONOMY


def write_predictions(path: Path, source: str | None, n: int = 800, seed: int = 0, shift: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "label": rng.integers(0, 2, n).astype("int8"),
            "gender": rng.choice(["male", "female", "unknown"], n, p=[0.48, 0.48, 0.04]),
            "race": rng.choice(["Asian", "White", "Black", "Others"], n),
            "id": [f"{source}-{i}" for i in range(n)],
        }
    )
    frame["score"] = np.clip(rng.normal(0.5 + shift * (2 * frame["label"] - 1), 0.2), 0, 1)
    if source is not None:
        frame["source"] = source
    frame.to_parquet(path)
    return frame


def make_three_sources(tmp_path: Path) -> list[Path]:
    paths = []
    for i, (source, shift) in enumerate((("ffpp", 0.3), ("celebdf", 0.1), ("dfdc", 0.05))):
        path = tmp_path / f"{source}.parquet"
        write_predictions(path, source, seed=i, shift=shift)
        paths.append(path)
    return paths


@pytest.fixture
def three_sources(tmp_path: Path) -> list[Path]:
    return make_three_sources(tmp_path)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path, str]:
    """One full CLI run (3 sources, bootstrap, plots) shared by the tests that read its output."""
    folder = tmp_path_factory.mktemp("evaluate-e2e")
    paths = make_three_sources(folder)
    out = folder / "report"
    args = [a for p in paths for a in ("--predictions", str(p))]
    assert main(["evaluate", *args, "--out", str(out), "--bootstrap", "50", "--intra", "ffpp"]) == 0
    return paths, out, folder


def run_cli(*args: str) -> int:
    return main(["evaluate", *args])


def test_end_to_end_writes_report_md_html_and_plots(rendered):
    three_sources, out, folder = rendered
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 2400 and report["threshold"] == 0.5
    assert report["ci"]["resamples"] == 50
    by_source = report["by_source"]
    assert by_source["intra"] == "ffpp" and by_source["cross"] == ["celebdf", "dfdc"]
    table = by_source["table"]
    assert table["ffpp"]["role"] == "intra" and table["dfdc"]["role"] == "cross"
    gap = by_source["gap"]["per_source"]["celebdf"]["F_FPR"]
    assert gap == pytest.approx(table["celebdf"]["F_FPR"] - table["ffpp"]["F_FPR"])
    assert by_source["sources"]["celebdf"]["n"] == 800
    # the pooled report equals the library call on the concatenated files
    frames = [pd.read_parquet(p) for p in three_sources]
    pooled = pd.concat(frames, ignore_index=True)
    direct = fairness_report(pooled["label"], pooled["score"], pooled["gender"], pooled["race"])
    assert report["fairness"] == direct["fairness"] and report["groups"] == direct["groups"]
    for name in (
        "report.md",
        "report.html",
        *(f"plots/{p}" for p in ("bars_intersectional.png", "roc.png", "scores.png", "intra_cross.png")),
    ):
        assert (out / name).stat().st_size > 1000, name
    for name in ("roc.svg", "intra_cross.svg", "bars_intersectional_celebdf.svg"):
        assert (out / "plots" / name).read_text().lstrip().startswith("<?xml"), name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 9  # 6 pooled plots + one group plot per source
    assert "Fairness (pooled: all sources together)" in html and "Source celebdf (cross): 800 predictions" in html
    gap_ci = report["ci"]["gap"]["per_source"]["celebdf"]["F_FPR"]
    assert gap_ci[0] <= gap <= gap_ci[1]
    assert set(report["ci"]["table"]) == {"ffpp", "celebdf", "dfdc"}
    metrics_csv = pd.read_csv(out / "metrics.csv")
    assert set(metrics_csv["source"]) == {"pooled", "ffpp", "celebdf", "dfdc"}
    row = metrics_csv.query(
        "source == 'pooled' and scope == 'threshold' and attribute == 'intersectional' and metric == 'F_FPR'"
    )
    assert row["value"].item() == pytest.approx(report["fairness"]["intersectional"]["F_FPR"])
    assert len(pd.read_csv(out / "predictions.csv")) == 2400
    md = (out / "report.md").read_text()
    assert "## Intra vs cross dataset (intra: ffpp)" in md and "](plots/roc.png)" in md
    assert not list(folder.glob(".report.*"))  # no staging folder left


def test_intra_defaults_to_the_first_file_and_source_falls_back_to_the_file_name(tmp_path):
    a = tmp_path / "celebdf.parquet"
    b = tmp_path / "mine.parquet"
    write_predictions(a, None, seed=1)
    write_predictions(b, "dfd", seed=2)
    out = tmp_path / "out"
    assert run_cli("--predictions", str(a), "--predictions", str(b), "--out", str(out), "--no-plots") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["by_source"]["intra"] == "celebdf" and report["by_source"]["cross"] == ["dfd"]
    assert not (out / "plots").exists()


def test_rerun_into_an_existing_folder_replaces_the_files(tmp_path, three_sources):
    out = tmp_path / "out"
    assert run_cli("--predictions", str(three_sources[0]), "--out", str(out), "--no-plots", "--bootstrap", "0") == 0
    assert run_cli("--predictions", str(three_sources[1]), "--out", str(out), "--no-plots", "--threshold", "0.4") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["threshold"] == 0.4 and report["by_source"]["intra"] == "celebdf"


def _bad_file(tmp_path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    path = tmp_path / "bad.parquet"
    frame = pd.DataFrame(
        {"label": [0, 1, 1, 0], "score": [0.1, 0.9, 0.7, 0.3], "gender": ["male"] * 4, "race": ["White"] * 4}
    )
    change(frame).to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("change", "row", "column", "words"),
    [
        (lambda f: f.drop(columns=["score"]), None, "score", "required column is missing"),
        (lambda f: f.assign(score=[0.1, np.nan, 0.7, 0.3]), 1, "score", "[0, 1]"),
        (lambda f: f.assign(score=[0.1, 0.9, 1.5, 0.3]), 2, "score", "got 1.5"),
        (lambda f: f.assign(label=[0, 1, 2, 0]), 2, "label", "0 (real) or 1 (fake)"),
        (lambda f: f.assign(race=["White", "White", "White", "Martian"]), 3, "race", "'Martian'"),
        (lambda f: f.assign(gender=["male", "Male", "male", "male"]), 1, "gender", "'Male'"),
        (lambda f: f.iloc[:0], None, None, "no predictions"),
    ],
)
def test_bad_input_names_file_row_column_and_writes_nothing(tmp_path, capsys, change, row, column, words):
    path = _bad_file(tmp_path, change)
    with pytest.raises(ManifestError) as error:
        read_predictions(path, DEFAULT_TAXONOMY)
    assert error.value.file == str(path) and error.value.row == row and error.value.column == column
    assert words in str(error.value)
    out = tmp_path / "out"
    assert run_cli("--predictions", str(path), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and words in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_bad_second_file_writes_nothing_even_into_an_existing_folder(tmp_path, three_sources):
    out = tmp_path / "out"
    out.mkdir()
    bad = _bad_file(tmp_path, lambda f: f.assign(label=[0, 1, 7, 0]))
    assert run_cli("--predictions", str(three_sources[0]), "--predictions", str(bad), "--out", str(out)) == 2
    assert list(out.iterdir()) == []


def test_not_parquet_missing_file_and_bad_threshold(tmp_path, capsys):
    text = tmp_path / "preds.parquet"
    text.write_text("label,score\n0,0.1\n")
    assert run_cli("--predictions", str(text), "--out", str(tmp_path / "o")) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err
    assert run_cli("--predictions", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "o")) == 2
    assert "not found" in capsys.readouterr().err
    good = tmp_path / "good.parquet"
    write_predictions(good, "ffpp")
    assert run_cli("--predictions", str(good), "--out", str(tmp_path / "o"), "--threshold", "1.5") == 2
    assert "evaluate.threshold" in capsys.readouterr().err
    assert run_cli("--predictions", str(good), "--out", str(tmp_path / "o"), "--intra", "dfdc") == 2
    assert "--intra 'dfdc'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_one_class_group_is_named_in_the_report(tmp_path):
    path = tmp_path / "p.parquet"
    frame = write_predictions(path, "ffpp", seed=3)
    frame.loc[(frame["gender"] == "female") & (frame["race"] == "Black"), "label"] = 1
    frame.to_parquet(path)
    out = tmp_path / "out"
    assert run_cli("--predictions", str(path), "--out", str(out), "--no-plots", "--bootstrap", "0") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["one_class"]["intersectional"] == ["female-Black"]
    assert report["groups"]["intersectional"]["female-Black"]["auc"] is None
    md = (out / "report.md").read_text()
    assert "Groups with one class only (no AUC, no EER): intersectional: female-Black." in md
    assert "| intersectional | female-Black | only fake rows | auc, eer, fpr | F_FPR, F_OAE, F_DP," in md
    assert "> **Warning:** pooled: intersectional groups with one class, left out of every fairness gap" in md


def test_report_html_has_each_element_and_renders_in_headless_chromium(tmp_path, rendered):
    _, out, _ = rendered
    report = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    # the warnings box, the intra/cross table and the gap rows with numbers and intervals, per-source tables
    assert '<div class="warning"><b>Warning:</b> pooled: 94 rows have an unknown gender' in html
    gap = report["by_source"]["gap"]["per_source"]["dfdc"]["F_AUC"]
    low, high = report["ci"]["gap"]["per_source"]["dfdc"]["F_AUC"]
    assert "<td>dfdc - ffpp</td>" in html and f"{gap:.2f}<br><small>[{low:.2f}, {high:.2f}]</small>" in html
    for source, role in (("ffpp", "intra"), ("celebdf", "cross"), ("dfdc", "cross")):
        assert f"Source {source} ({role}): 800 predictions" in html
    for caption in ("intra vs cross datasets, coloured by the difference from intra", "ROC curves by group"):
        assert f'alt="{caption}"' in html
    pixels = screenshot(out / "report.html", tmp_path / "shot.png", size=(1200, 12000))
    assert_looks_like_a_report(pixels[:2000])
    rich = [len(np.unique(band.reshape(-1, 3), axis=0)) > 300 for band in np.array_split(pixels, 24)]
    assert sum(rich) >= 12, rich  # plots rendered down the whole page, not broken-image icons


def test_cli_prints_a_summary_with_intervals_by_default(tmp_path, three_sources, capsys):
    assert run_cli("--predictions", str(three_sources[0]), "--out", str(tmp_path / "o"), "--no-plots") == 0
    out = capsys.readouterr().out
    assert re.search(r"evaluated 800 predictions: AUC 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", out) and "F_FPR" in out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["ci"]["resamples"] == 1000 and "projection" in report["ci"]["method"]
    assert (
        run_cli("--predictions", str(three_sources[0]), "--out", str(tmp_path / "z"), "--no-plots", "--bootstrap", "0")
        == 0
    )
    assert json.loads((tmp_path / "z" / "report.json").read_text())["ci"] == {}


def test_to_frame_is_a_tidy_table_of_the_report(three_sources):
    frame = pd.read_parquet(three_sources[0])
    report = fairness_report(frame["label"], frame["score"], frame["gender"], frame["race"], bootstrap=50)
    tidy = report.to_frame()
    assert list(tidy.columns) == ["scope", "attribute", "group", "metric", "value", "low", "high", "n"]
    row = tidy.query("scope == 'threshold' and attribute == 'race' and group == 'Black' and metric == 'fpr'")
    assert row["value"].item() == report["groups"]["race"]["Black"]["fpr"]
    assert [row["low"].item(), row["high"].item()] == report["ci"]["groups"]["race"]["Black"]["fpr"]
    fair = tidy.query("scope == 'threshold' and attribute == 'intersectional' and metric == 'F_DP'")
    assert fair["value"].item() == report["fairness"]["intersectional"]["F_DP"] and fair["group"].isna().all()
