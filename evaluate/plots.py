"""Plots of a report, where a reader would rather look than read (matplotlib, Agg backend).

Every plot is drawn once and saved twice: a 150-dpi PNG for the HTML page and an SVG for papers.
Nothing touches the disk until the whole report is ready (`make_plots` returns bytes).
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the headless backend)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .cross import TABLE_METRICS  # noqa: E402
from .groups import ATTRIBUTES  # noqa: E402
from .inputs import Predictions  # noqa: E402
from .render import source_stem  # noqa: E402
from .stats import grouping_ranking, score_order  # noqa: E402

BAR_METRICS: tuple[str, ...] = ("fpr", "tpr", "acc")
#: Metrics where lower is better (coloured the other way round in the heatmap).
LOWER_IS_BETTER = {"eer", *(m for m in TABLE_METRICS if m.startswith("F_"))}


#: Difference from the intra value at which the heatmap's colour saturates: 0.1 for the detection
#: metrics (fractions), 10 points for the F_* gaps (percent). A fixed scale, so a 0.0004 AUC
#: difference stays white instead of being stretched over the whole colour range.
SATURATION = {"detection": 0.1, "fairness": 10.0}
PNG_DPI = 150


def save(fig: Figure, stem: str) -> dict[str, bytes]:
    """`stem.png` and `stem.svg` of a figure, which is closed afterwards."""
    out = {}
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata={"Date": None} if fmt == "svg" else None)
        out[f"{stem}.{fmt}"] = buffer.getvalue()
    plt.close(fig)
    return out


def group_bars(report: dict[str, Any], attribute: str, title: str | None = None) -> Figure:
    """FPR, TPR and ACC per group as bars, the overall value as a dashed line, CI whiskers when bootstrapped."""
    groups = report["groups"][attribute]
    names = list(groups)
    ci_groups = report.get("ci", {}).get("groups", {}).get(attribute, {})
    fig, axes = plt.subplots(
        1, len(BAR_METRICS), figsize=(4.2 * len(BAR_METRICS), 3.8), sharey=True, layout="constrained"
    )
    x = np.arange(len(names))
    for ax, metric in zip(axes, BAR_METRICS):
        values = np.array([np.nan if groups[g][metric] is None else groups[g][metric] for g in names])
        ax.bar(x, np.nan_to_num(values), color="#4C72B0", width=0.7)
        for i in np.flatnonzero(np.isnan(values)):
            ax.text(x[i], 0.02, "n/a", ha="center", va="bottom", fontsize=8, color="#888888", rotation=90)
        intervals = [ci_groups.get(g, {}).get(metric) for g in names]
        if any(iv is not None for iv in intervals):
            lo = np.array([values[i] - iv[0] if iv else 0.0 for i, iv in enumerate(intervals)])
            hi = np.array([iv[1] - values[i] if iv else 0.0 for i, iv in enumerate(intervals)])
            ax.errorbar(
                x,
                np.nan_to_num(values),
                yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=1,
            )
        overall = report["overall"][metric]
        if overall is not None:
            ax.axhline(overall, color="#C44E52", ls="--", lw=1.2, label=f"overall {overall:.3f}")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(metric.upper())
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
    fig.suptitle(title or f"{attribute} groups at threshold {report['threshold']:g}")
    return fig


def roc_curves(preds: Predictions) -> Figure:
    """ROC curve of every group, one panel per attribute, the overall curve dashed."""
    order = score_order(preds.scores)
    cell_desc, labels_desc, scores_desc = preds.cells.code[order], preds.labels[order], preds.scores[order]
    fig, axes = plt.subplots(1, len(ATTRIBUTES), figsize=(4.6 * len(ATTRIBUTES), 4.4), layout="constrained")
    overall_curve = _roc_points(labels_desc, scores_desc, np.zeros(labels_desc.size, dtype=np.int16), 1)[0]
    for ax, attribute in zip(axes, ATTRIBUTES):
        grouping = preds.cells.groupings[attribute]
        codes = grouping.lookup[cell_desc]
        known = np.flatnonzero(codes >= 0)
        rows = known[np.argsort(codes[known], kind="stable")]
        curves = _roc_points(labels_desc[rows], scores_desc[rows], codes[rows], len(grouping.names))
        auc = grouping_ranking(grouping, cell_desc, labels_desc, scores_desc).auc
        for i, name in enumerate(grouping.names):
            if curves[i] is not None:
                ax.plot(*curves[i], lw=1.2, label=f"{name} ({auc[i]:.3f})")
        if overall_curve is not None:
            ax.plot(*overall_curve, color="black", ls="--", lw=1, label="overall")
        ax.plot([0, 1], [0, 1], color="#BBBBBB", lw=0.8)
        ax.set(title=f"ROC by {attribute} group", xlabel="FPR", ylabel="TPR", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(fontsize=7, loc="lower right", title="group (AUC)", title_fontsize=7)
    return fig


def _roc_points(
    labels_desc: np.ndarray, scores_desc: np.ndarray, codes: np.ndarray, n_groups: int, points: int = 501
) -> list[Any]:
    """(fpr, tpr) per group on a fixed FPR grid (enough for a picture of a million-row curve).

    Rows come grouped by `codes`, scores descending within a group; tied scores make one ROC point.
    """
    curves: list[Any] = []
    for g in range(n_groups):
        lo, hi = np.searchsorted(codes, [g, g + 1])
        y = labels_desc[lo:hi].astype(np.float64)
        s = scores_desc[lo:hi]
        n_pos, n_neg = y.sum(), y.size - y.sum()
        if n_pos == 0 or n_neg == 0:
            curves.append(None)
            continue
        last_of_tie = np.append(s[:-1] != s[1:], True)
        tpr = np.concatenate(([0.0], (np.cumsum(y) / n_pos)[last_of_tie]))
        fpr = np.concatenate(([0.0], (np.cumsum(1 - y) / n_neg)[last_of_tie]))
        grid = np.linspace(0, 1, points)
        curves.append((grid, np.interp(grid, fpr, tpr)))
    return curves


def score_histograms(preds: Predictions, threshold: float, attribute: str = "intersectional") -> Figure:
    """Score distribution of real and fake rows in every group, the threshold as a line."""
    grouping = preds.cells.groupings[attribute]
    codes = grouping.lookup[preds.cells.code]
    n = len(grouping.names)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False, sharex=True, layout="constrained"
    )
    bins = np.linspace(0, 1, 41)
    for i, name in enumerate(grouping.names):
        ax = axes[i // cols][i % cols]
        in_group = codes == i
        for label, colour, text in ((0, "#4C72B0", "real"), (1, "#C44E52", "fake")):
            values = preds.scores[in_group & (preds.labels == label)]
            if values.size:
                ax.hist(
                    values,
                    bins=bins,
                    density=True,
                    histtype="stepfilled",
                    alpha=0.55,
                    color=colour,
                    label=f"{text} ({values.size})",
                )
        ax.axvline(threshold, color="black", lw=0.8, ls=":")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if ax.has_data():
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes, color="#888888")
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(f"Scores by {attribute} group (threshold {threshold:g})")
    return fig


def intra_cross_heatmap(by_source: dict[str, Any]) -> Figure:
    """The intra-vs-cross table: each cell's value and its difference from intra printed in it; colour
    on a diverging scale centred on the intra value (white), green where the cross set does better,
    red where worse, saturating at `SATURATION`."""
    sources = list(by_source["table"])
    intra = by_source["intra"]
    values = np.array(
        [
            [np.nan if by_source["table"][s][m] is None else by_source["table"][s][m] for m in TABLE_METRICS]
            for s in sources
        ],
        dtype=np.float64,
    )
    reference = values[sources.index(intra)]
    diff = values - reference
    scale = np.array([SATURATION["fairness" if m.startswith("F_") else "detection"] for m in TABLE_METRICS])
    sign = np.array([-1.0 if m in LOWER_IS_BETTER else 1.0 for m in TABLE_METRICS])
    shade = np.clip(sign * diff / scale, -1, 1)  # +1 better than intra, -1 worse
    fig, ax = plt.subplots(figsize=(1.15 * len(TABLE_METRICS) + 2, 0.7 * len(sources) + 1.9), layout="constrained")
    image = ax.imshow(np.where(np.isfinite(shade), shade, np.nan), cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    for i, source in enumerate(sources):
        for j, metric in enumerate(TABLE_METRICS):
            v, d = values[i, j], diff[i, j]
            percent = metric.startswith("F_")
            if not np.isfinite(v):
                text = "n/a"
            else:
                text = f"{v:.2f}" if percent else f"{v:.3f}"
                if source != intra and np.isfinite(d):
                    text += f"\n({d:+.2f})" if percent else f"\n({d:+.3f})"
            dark = np.isfinite(shade[i, j]) and abs(shade[i, j]) > 0.75
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black")
    labels = [f"{s} ({by_source['table'][s]['role']})" for s in sources]
    ax.set_yticks(range(len(sources)), labels)
    ax.set_xticks(
        range(len(TABLE_METRICS)),
        [m.upper() if not m.startswith("F_") else m for m in TABLE_METRICS],
        rotation=45,
        ha="right",
    )
    bar = fig.colorbar(image, ax=ax, shrink=0.8, ticks=[-1, 0, 1])
    bar.ax.set_yticklabels(["worse", f"= {intra}", "better"], fontsize=7)
    ax.set_title(
        f"intra ({intra}) vs cross; (difference from intra); colour saturates at"
        f" {SATURATION['detection']:g} (detection) / {SATURATION['fairness']:g} points (F_*)",
        fontsize=9,
    )
    return fig


def make_plots(report: dict[str, Any], preds: Predictions) -> dict[str, bytes]:
    """All plots of a report: file name -> PNG or SVG bytes, in display order."""
    plots: dict[str, bytes] = {}
    for attribute in ATTRIBUTES:
        plots.update(save(group_bars(report, attribute), f"bars_{attribute}"))
    plots.update(save(roc_curves(preds), "roc"))
    plots.update(save(score_histograms(preds, report["threshold"]), "scores"))
    by_source = report.get("by_source", {})
    if len(by_source.get("table", {})) >= 2:
        plots.update(save(intra_cross_heatmap(by_source), "intra_cross"))
        for source, sub in by_source["sources"].items():
            title = f"{source} ({by_source['table'][source]['role']}): intersectional groups"
            plots.update(save(group_bars(sub, "intersectional", title), f"bars_intersectional_{source_stem(source)}"))
    return plots
