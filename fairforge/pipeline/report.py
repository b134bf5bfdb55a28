"""The run's one summary: `RUN_DIR/report.md` and a self-contained `RUN_DIR/report.html`.

It gathers what each stage already wrote (the balanced set's manifest and contact sheets, the
training history and TensorBoard loss, the evaluate report with intra vs cross fairness, the gap
and their intervals, and evaluate's plots) instead of recomputing anything, so the summary can
never disagree with the stage outputs it points to.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairforge.atomic import atomic_write_text
from fairforge.evaluate.metrics import FAIRNESS_METRICS

from .stage import StageContext, StageResult

#: Evaluate's plots folder (the pooled plots and one group plot per source).
EVALUATE_PLOTS = "evaluate/plots"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_ci(value: Any, interval: Any, digits: int = 3) -> str:
    """estimate [low, high], or the estimate alone when there is no interval."""
    text = _fmt(value, digits)
    if value is not None and isinstance(interval, list) and len(interval) == 2:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell_counts(run_dir: Path) -> tuple[list[str], list[list[Any]]] | None:
    """Images per intersectional cell, label and split in the balanced, mixed set, and the methods that made them."""
    from fairforge.manifest import MANIFEST_NAME

    path = run_dir / "balance" / MANIFEST_NAME
    if not path.is_file():
        return None
    import pandas as pd

    frame = pd.read_parquet(path, columns=["gender", "race", "label", "split", "source", "method"])
    frame["cell"] = frame["gender"].fillna("unknown").astype(str) + "-" + frame["race"].fillna("unknown").astype(str)
    frame["kind"] = frame["label"].map({0: "real", 1: "fake"}) + "/" + frame["split"].fillna("-").astype(str)
    pivot = frame.pivot_table(index="cell", columns="kind", values="label", aggfunc="size", fill_value=0)
    methods = frame.groupby("cell")["method"].value_counts().sort_index()
    header = ["cell", *pivot.columns.tolist(), "total", "method"]
    rows = []
    for cell in pivot.index:
        made_by = ", ".join(f"{m} {int(n)}" for m, n in methods.loc[cell].items())
        rows.append([cell, *map(int, pivot.loc[cell].tolist()), int(pivot.loc[cell].sum()), made_by])
    return header, rows


def _training_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch validation metrics: the history in the newest checkpoint's trainer_state.json."""
    states = sorted((run_dir / "train").glob("*/checkpoints/step_*/trainer_state.json"))
    if not states:
        return []
    history = json.loads(states[-1].read_text()).get("trainer", {}).get("history", [])
    return [{k: v for k, v in row.items() if isinstance(v, int | float)} for row in history]


def _train_loss(run_dir: Path) -> tuple[list[float], list[float]]:
    """(steps, loss) of the training loss as logged to TensorBoard (`train/overall`); empty without event files."""
    events = sorted((run_dir / "train").rglob("events.out.tfevents.*"))
    if not events:
        return [], []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for file in events:
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        if "train/overall" in acc.Tags().get("scalars", []):
            points.update({e.step: e.value for e in acc.Scalars("train/overall")})
    steps = sorted(points)
    return [float(s) for s in steps], [points[s] for s in steps]


def curve_panels(metrics: list[dict[str, Any]], loss: tuple[list[float], list[float]]) -> list[str]:
    """The panels the training figure shows, in order: train loss, val AUC, then every val F_* logged."""
    logged = {k for m in metrics for k in m}
    panels = ["train/loss"] if loss[0] else []
    panels += [k for k in ("val/auc",) if k in logged]
    panels += [f"val/{name}" for name in FAIRNESS_METRICS if f"val/{name}" in logged]
    return panels


def _plot_training(
    metrics: list[dict[str, Any]], loss: tuple[list[float], list[float]], out: Path
) -> tuple[Path, list[str]] | None:
    panels = curve_panels(metrics, loss)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(panels))
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.0 * columns, 2.9 * rows), squeeze=False, layout="constrained")
    steps = [m.get("step", i) for i, m in enumerate(metrics)]
    for ax, key in zip(axes.flat, panels):
        if key == "train/loss":
            ax.plot(*loss, lw=1.2, color="#4C72B0")
            ax.set(title="train loss (overall)", ylabel="loss")
        else:
            ys = [m.get(key) for m in metrics]
            ax.plot(steps, ys, marker="o", lw=1.2, color="#C44E52" if "F_" in key else "#55A868")
            name = key.split("/", 1)[1]
            ax.set(
                title=f"validation {name.upper() if name == 'auc' else name}", ylabel="percent" if "F_" in key else ""
            )
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.savefig(out, dpi=110)
    fig.savefig(out.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)
    return out, panels


def _evaluate_report(run_dir: Path) -> dict[str, Any] | None:
    report = run_dir / "evaluate" / "report.json"
    return json.loads(report.read_text()) if report.is_file() else None


def _img_tag(path: Path, width: int = 640, alt: str | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    label = html.escape(alt or path.stem)
    return f'<img alt="{label}" src="data:image/png;base64,{data}" style="max-width:{width}px">'


def _gap_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    """The fairness generalization gap: one row per cross source and the mean, every metric with its interval."""
    by_source = report.get("by_source") or {}
    gap = by_source.get("gap") or {}
    if not gap:
        return None
    ci = (report.get("ci") or {}).get("gap", {})
    metrics = list(gap["mean"])
    intra = by_source["intra"]
    rows = [
        [
            f"{source} - {intra}",
            *(_with_ci(values[m], ci.get("per_source", {}).get(source, {}).get(m)) for m in metrics),
        ]
        for source, values in gap["per_source"].items()
    ]
    rows.append([f"mean cross - {intra}", *(_with_ci(gap["mean"][m], ci.get("mean", {}).get(m)) for m in metrics)])
    return ["gap", *metrics], rows


def _source_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    """Intra vs cross: every source's detection and intersectional fairness metrics with intervals."""
    by_source = report.get("by_source") or {}
    table = by_source.get("table") or {}
    if not table:
        return None
    ci = (report.get("ci") or {}).get("table", {})
    metrics = [m for m in next(iter(table.values())) if m not in ("role", "n")]
    rows = [
        [source, row["role"], row["n"], *(_with_ci(row[m], ci.get(source, {}).get(m)) for m in metrics)]
        for source, row in table.items()
    ]
    return ["source", "role", "n", *metrics], rows


def _pooled_rows(report: dict[str, Any]) -> list[list[Any]]:
    ci = report.get("ci") or {}
    overall = report.get("overall", {})
    rows = [
        [k, _with_ci(overall.get(k), ci.get("overall", {}).get(k))] for k in ("auc", "acc", "eer", "ap", "fpr", "tpr")
    ]
    fair = report.get("fairness", {}).get("intersectional", {})
    fair_ci = ci.get("fairness", {}).get("intersectional", {})
    rows += [[k, _with_ci(fair.get(k), fair_ci.get(k))] for k in fair]
    return rows


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

    def section(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], level: int = 2) -> None:
        md.extend(["#" * level + " " + title, "", _table(header, rows), ""])
        body.append(f"<h{level}>{html.escape(title)}</h{level}>" + _html_table(header, rows))

    stage_rows = []
    for res in results:
        rec = state.read_record(run_dir / res.name) or {}
        seconds = res.seconds if res.status == "ran" else rec.get("seconds")
        stage_rows.append([res.name, res.status, seconds])
    section("Stages", ["stage", "status", "seconds (last run)"], stage_rows)

    counts = _cell_counts(run_dir)
    if counts:
        section("The balanced set", *counts)
        # balance's own report: the acceptance heatmap (the generator's bias) and every cell's contact sheet
        report_dir = run_dir / "balance" / "report"
        for sheet in sorted(report_dir.glob("acceptance*.png")):
            md += [f"![{sheet.stem}]({sheet.relative_to(run_dir).as_posix()})", ""]
            body.append(f"<h4>{html.escape(sheet.stem)}</h4>" + _img_tag(sheet, 560))
        sheets = sorted((report_dir / "contact").glob("*.png"))
        if sheets:
            md += ["### Contact sheets (every cell)", ""]
            md += [f"![{p.stem}]({p.relative_to(run_dir).as_posix()})" for p in sheets] + [""]
            figures = "".join(
                f'<figure class="sheet">{_img_tag(p, 520)}<figcaption>{html.escape(p.stem)}</figcaption></figure>'
                for p in sheets
            )
            body.append(f'<h3>Contact sheets (every cell)</h3><div class="sheets">{figures}</div>')

    metrics = _training_metrics(run_dir)
    loss = _train_loss(run_dir)
    if metrics or loss[0]:
        plotted = _plot_training(metrics, loss, run_dir / "training_curves.png")
        md += ["## Training", ""]
        body.append("<h2>Training</h2>")
        if plotted:
            plot, panels = plotted
            caption = "panels: " + ", ".join(panels)
            md += [f"![training curves: {caption}](training_curves.png)", ""]
            body.append(f"<figure>{_img_tag(plot, 1000, 'training curves')}<figcaption>{caption}</figcaption></figure>")
        if metrics:
            last = metrics[-1]
            section("Last validation", ["metric", "value"], [[k, v] for k, v in last.items()], level=3)

    report = _evaluate_report(run_dir)
    if report:
        plots = run_dir / EVALUATE_PLOTS
        warnings = report.get("warnings", [])
        md += ["## Evaluation", ""]
        body.append("<h2>Evaluation</h2>")
        for w in warnings:
            text = (f"{w['scope']}: " if "scope" in w else "") + w["message"]
            md += [f"> **Warning:** {text}", ""]
            body.append(f'<div class="warning"><b>Warning:</b> {html.escape(text)}</div>')
        ci = report.get("ci") or {}
        if ci:
            ci_text = f"Brackets: {ci['level']:.0%} intervals, {ci['resamples']} resamples ({ci['method']})."
            md += [ci_text, ""]
            body.append(f"<p>{html.escape(ci_text)}</p>")
        sources = _source_rows(report)
        if sources:
            section("Intra vs cross dataset", *sources, level=3)
            if (plots / "intra_cross.png").is_file():
                md += [f"![intra vs cross]({EVALUATE_PLOTS}/intra_cross.png)", ""]
                body.append(_img_tag(plots / "intra_cross.png", 1000, "intra vs cross"))
        gap = _gap_rows(report)
        if gap:
            section("Fairness generalization gap (cross minus intra)", *gap, level=3)
        for source, sub in (report.get("by_source") or {}).get("sources", {}).items():
            role = report["by_source"]["table"][source]["role"]
            section(f"Source {source} ({role})", ["metric", "value"], _pooled_rows(sub), level=3)
            stem = re.sub(r"[^A-Za-z0-9_-]", "_", source) or "_"
            plot = plots / f"bars_intersectional_{stem}.png"
            if plot.is_file():
                md += [f"![{source} groups]({plot.relative_to(run_dir).as_posix()})", ""]
                body.append(_img_tag(plot, 900, f"{source} groups"))
        section("Pooled: all test sets together", ["metric", "value"], _pooled_rows(report), level=3)
        for name in ("roc.png", "bars_intersectional.png"):
            if (plots / name).is_file():
                md += [f"![{name}]({EVALUATE_PLOTS}/{name})", ""]
                body.append(_img_tag(plots / name, 900, f"pooled {name[:-4]}"))
        md += ["Full report: [evaluate/report.html](evaluate/report.html)", ""]
        body.append('<p>Full report: <a href="evaluate/report.html">evaluate/report.html</a></p>')

    atomic_write_text(run_dir / "report.md", "\n".join(md))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>fairforge run</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1150px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
        "td:first-child{text-align:left}img{display:block;margin:1em 0}"
        ".sheets{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:8px}"
        ".sheets img{max-width:100%;margin:0}.sheet{margin:0}figcaption{font-size:.8em;color:#555}"
        ".warning{background:#fff4e5;border-left:4px solid #e08a00;padding:.4em .8em;margin:.4em 0}</style>"
        "</head><body>" + "\n".join(body) + "</body></html>"
    )
    atomic_write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{cells}</table>"
