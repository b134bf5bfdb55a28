"""The run's one summary: `RUN_DIR/report.md` and a self-contained `RUN_DIR/report.html`.

It gathers what each stage already wrote (the balanced set's manifest and contact sheet, the
training metrics, the evaluate report with intra vs cross fairness) instead of recomputing
anything, so the summary can never disagree with the stage outputs it points to.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairforge.atomic import atomic_write_text

from .stage import StageContext, StageResult

FAIRNESS_KEYS = ("F_FPR", "F_OAE", "F_DP", "F_MEO", "F_AUC")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell_counts(run_dir: Path) -> tuple[list[str], list[list[Any]]] | None:
    """Images per intersectional cell, label and split in the balanced, mixed set."""
    from fairforge.manifest import MANIFEST_NAME

    path = run_dir / "balance" / MANIFEST_NAME
    if not path.is_file():
        return None
    import pandas as pd

    frame = pd.read_parquet(path, columns=["gender", "race", "label", "split", "source"])
    frame["cell"] = frame["gender"].astype(str) + "-" + frame["race"].astype(str)
    frame["kind"] = frame["label"].map({0: "real", 1: "fake"}) + "/" + frame["split"].fillna("-").astype(str)
    pivot = frame.pivot_table(index="cell", columns="kind", values="label", aggfunc="size", fill_value=0)
    header = ["cell", *pivot.columns.tolist(), "total"]
    rows = [[cell, *map(int, pivot.loc[cell].tolist()), int(pivot.loc[cell].sum())] for cell in pivot.index]
    return header, rows


def _training_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch validation metrics: the history in the newest checkpoint's trainer_state.json."""
    states = sorted((run_dir / "train").glob("*/checkpoints/step_*/trainer_state.json"))
    if not states:
        return []
    history = json.loads(states[-1].read_text()).get("trainer", {}).get("history", [])
    return [{k: v for k, v in row.items() if isinstance(v, int | float)} for row in history]


def _plot_training(metrics: list[dict[str, Any]], out: Path) -> Path | None:
    series = {k for m in metrics for k, v in m.items() if isinstance(v, int | float) and k not in ("epoch", "step")}
    if not metrics or not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in sorted(series) if k.startswith("val/")][:8] or sorted(series)[:8]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    x = [m.get("step", m.get("epoch", i)) for i, m in enumerate(metrics)]
    for ax, key in zip(axes[0], keys):
        ax.plot(x, [m.get(key) for m in metrics], marker="o")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _evaluate_summary(run_dir: Path) -> tuple[dict[str, Any] | None, list[Path]]:
    report = run_dir / "evaluate" / "report.json"
    if not report.is_file():
        return None, []
    plots = sorted((run_dir / "evaluate").glob("*.png"))
    return json.loads(report.read_text()), plots


def _img_tag(path: Path, width: int = 640) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}" style="max-width:{width}px">'


def write_run_report(ctx: StageContext, results: Sequence[StageResult]) -> Path:
    """Write report.md and report.html in the run folder; return the HTML path."""
    from . import state

    run_dir = ctx.run_dir
    md: list[str] = [f"# fairforge run: preset `{ctx.preset}`", ""]
    body: list[str] = [f"<h1>fairforge run: preset <code>{html.escape(ctx.preset)}</code></h1>"]
    if ctx.preset == "tiny":
        note = (
            "This run used the **tiny preset**: random-weight tiny models built locally, a few images per "
            "cell. Its numbers show that every stage runs end to end, not how fair a real detector is."
        )
        md += [note, ""]
        body.append(f"<p><b>Tiny preset.</b> {html.escape(note.replace('**', ''))}</p>")

    stage_rows = []
    for res in results:
        rec = state.read_record(run_dir / res.name) or {}
        seconds = res.seconds if res.status == "ran" else rec.get("seconds")
        stage_rows.append([res.name, res.status, seconds])
    md += ["## Stages", "", _table(["stage", "status", "seconds (last run)"], stage_rows), ""]
    body.append("<h2>Stages</h2>" + _html_table(["stage", "status", "seconds (last run)"], stage_rows))

    counts = _cell_counts(run_dir)
    if counts:
        md += ["## The balanced set", "", _table(*counts), ""]
        body.append("<h2>The balanced set</h2>" + _html_table(*counts))
        # balance's own report: the acceptance heatmap (the generator's bias) and a contact sheet per cell
        report_dir = run_dir / "balance" / "report"
        sheets = sorted(report_dir.glob("acceptance*.png")) + sorted((report_dir / "contact").glob("*.png"))[:4]
        for sheet in sheets:
            rel = sheet.relative_to(run_dir).as_posix()
            md += [f"![{sheet.stem}]({rel})", ""]
            body.append(f"<h4>{html.escape(sheet.stem)}</h4>" + _img_tag(sheet, 480))

    metrics = _training_metrics(run_dir)
    if metrics:
        plot = _plot_training(metrics, run_dir / "training_curves.png")
        last = metrics[-1]
        md += ["## Training", "", _table(["metric", "last"], [[k, v] for k, v in last.items()]), ""]
        body.append("<h2>Training</h2>" + _html_table(["metric", "last"], [[k, v] for k, v in last.items()]))
        if plot:
            md += ["![training curves](training_curves.png)", ""]
            body.append(_img_tag(plot, 960))

    report, plots = _evaluate_summary(run_dir)
    if report:
        overall = report.get("overall", {})
        rows = [[k, overall.get(k)] for k in ("auc", "acc", "eer", "ap", "fpr", "tpr")]
        fair = report.get("fairness", {}).get("intersectional", {})
        rows += [[k, fair.get(k)] for k in FAIRNESS_KEYS]
        md += ["## Evaluation (all test predictions)", "", _table(["metric", "value"], rows), ""]
        body.append("<h2>Evaluation</h2>" + _html_table(["metric", "value"], rows))
        by_source = report.get("by_source") or {}
        gap = by_source.get("gap") if isinstance(by_source, dict) else None
        if gap:
            gap_rows = [[k, v] for k, v in gap.items() if not isinstance(v, dict)]
            md += ["### Fairness generalization gap (cross minus intra)", "", _table(["metric", "gap"], gap_rows), ""]
            body.append(
                "<h3>Fairness generalization gap (cross minus intra)</h3>" + _html_table(["metric", "gap"], gap_rows)
            )
        md += ["Full report: [evaluate/report.html](evaluate/report.html)", ""]
        body.append('<p>Full report: <a href="evaluate/report.html">evaluate/report.html</a></p>')
        for plot in plots[:6]:
            body.append(_img_tag(plot))

    atomic_write_text(run_dir / "report.md", "\n".join(md))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>fairforge run</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
        "td:first-child{text-align:left}img{display:block;margin:1em 0}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    atomic_write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{cells}</table>"
