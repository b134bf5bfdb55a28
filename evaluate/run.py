"""`fairforge evaluate`: predictions files in, report.json / .md / .html, CSV tables and plots out.

Everything is computed and rendered in memory first; only then are files written, so a bad input
leaves nothing behind. A new output folder appears whole (written as a hidden sibling, then
renamed); into an existing folder each file is replaced atomically.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairforge.atomic import atomic_write_bytes
from fairforge.config.evaluate import EvaluateConfig
from fairforge.errors import FairforgeError

from .cross import cross_dataset
from .inputs import Predictions, concat_predictions, read_predictions, read_scores_for
from .report import report_frame, report_from_predictions

PLOT_DIR = "plots"
log = logging.getLogger(__name__)


def evaluate_files(
    predictions: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: EvaluateConfig | None = None,
    progress: bool = False,
    dataset: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Evaluate predictions files into `out`; returns the report dict written to report.json.

    The groups are those of `config.taxonomy` (the pipeline's `taxonomy:`). `dataset` (a manifest,
    release folder or Hub id): labels, cells and sources come from it by `id`, so the predictions
    need only `id` and `score`.
    """
    config = config or EvaluateConfig()
    taxonomy = config.taxonomy.build("evaluate.taxonomy")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FairforgeError(f"--out {out}: exists and is not a folder")
    if not predictions:
        raise FairforgeError("no predictions files given")
    if dataset is None:
        preds = concat_predictions([read_predictions(p, taxonomy) for p in predictions])
    else:
        from fairforge.resolve import resolve_dataset

        truth = resolve_dataset(dataset, taxonomy)
        preds = concat_predictions([read_scores_for(p, truth, taxonomy) for p in predictions])
    options = {
        "ci_level": config.ci_level,
        "bootstrap_bins": config.bootstrap_bins,
        "min_group_n": config.min_group_n,
    }
    report = report_from_predictions(
        preds, config.threshold, config.bootstrap, config.seed, progress=progress, **options
    )
    by_source = cross_dataset(preds, config.intra, config.threshold, config.bootstrap, config.seed, **options)
    report["by_source"] = by_source
    if report["ci"]:
        report["ci"].update(by_source.pop("ci"))
    else:
        by_source.pop("ci")
    report["inputs"] = [str(p) for p in predictions]
    report["warnings"] = [{"scope": "pooled", **w} for w in report["warnings"]]
    if len(by_source["sources"]) > 1:
        for source, sub in by_source["sources"].items():
            report["warnings"] += [{"scope": source, **w} for w in sub["warnings"]]
    files = render_files(report, preds, with_plots=config.plots)
    write_folder(out, files)
    for warning in report["warnings"]:
        log.warning("%s: %s", warning["scope"], warning["message"])
    return report


def predictions_csv(preds: Predictions) -> bytes:
    """The predictions as read (label, score, gender, race, source[, video]): for spreadsheets and R."""
    names = preds.cells.cell_names
    frame = pd.DataFrame(
        {
            "label": preds.labels,
            "score": preds.scores,
            "gender": np.array([n[0] for n in names])[preds.cells.code],
            "race": np.array([n[1] for n in names])[preds.cells.code],
            "source": np.array(preds.source_names, dtype=object)[preds.source_codes],
        }
    )
    if preds.video is not None:
        frame["video"] = preds.video
    return frame.to_csv(index=False).encode()


def metrics_csv(report: dict[str, Any]) -> bytes:
    """Every number of the report as a tidy table, the pooled rows first, then each source's."""
    frames = [report_frame(report).assign(source="pooled")]
    sources = report.get("by_source", {}).get("sources", {})
    frames += [report_frame(sub).assign(source=source) for source, sub in sources.items()]
    frame = pd.concat(frames, ignore_index=True)
    buffer = io.StringIO()
    frame[["source", *frame.columns[:-1]]].to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def render_files(report: dict[str, Any], preds: Any, with_plots: bool = True) -> dict[str, bytes]:
    """Every output file as bytes: report.json/.md/.html, predictions.csv, metrics.csv, plots/*.png and *.svg."""
    from .render import to_html, to_markdown

    plots: dict[str, bytes] = {}
    if with_plots:
        from .plots import make_plots  # matplotlib only when plots are asked for

        plots = make_plots(report, preds)
    files = {
        "report.json": (json.dumps(report, indent=2, allow_nan=False) + "\n").encode(),
        "report.md": to_markdown(report, plots, PLOT_DIR).encode(),
        "report.html": to_html(report, plots).encode(),
        "predictions.csv": predictions_csv(preds),
        "metrics.csv": metrics_csv(report),
    }
    files.update({f"{PLOT_DIR}/{name}": data for name, data in plots.items()})
    return files


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write `files` (relative path -> bytes) under `out`, never leaving a half-written report."""
    if out.is_dir():
        for rel, data in files.items():
            atomic_write_bytes(out / rel, data)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the report folder should not be
        for rel, data in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
