"""The report dict (report.json's shape) from predictions: the library API `fairness_report`.

`train` calls `fairness_report` every epoch on its validation predictions, so this module stays
light: numpy and pandas, no plotting, no file I/O.

Intervals. A max-min gap is biased upward (the largest of several noisy rates overshoots the
largest true rate) and its bootstrap replicates overshoot the estimate again, so the percentile
interval of the replicates can exclude the estimate and rarely covers the truth. Here:
- group rates, AUC, the sum-form gaps and differences of gaps: basic (reverse-percentile)
  bootstrap intervals [2 t - q_hi, 2 t - q_lo] for an estimate t and bootstrap quantiles q,
  which subtract the bootstrap's estimate of the bias instead of adding it;
- max-min gaps (F_FPR, F_OAE, F_DP, F_AUC, F_MEO): the projection of the compared groups' basic
  intervals [lo_g, hi_g]: [max(0, max_g lo_g - min_g hi_g), max_g hi_g - min_g lo_g]. It holds the
  truth whenever the true largest and smallest groups are inside their own intervals, wherever
  ties between groups lie, so it is conservative rather than biased (coverage figures: tests).
Each interval is clipped to the metric's range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairforge.taxonomy import DEFAULT_TAXONOMY, Taxonomy

from .bootstrap import bootstrap_stats
from .groups import ATTRIBUTES, OVERALL
from .inputs import Predictions, check_predictions
from .metrics import FAIRNESS_METRICS, GROUP_METRICS, NULL_REASONS, compared
from .stats import GroupStats, at_threshold, group_stats, score_order

#: CI level of the bootstrap intervals.
CI_LEVEL = 0.95
#: Groups smaller than this are named in a warning: their rates move by 1/n per row.
MIN_GROUP_N = 30
#: Group metrics that get intervals (AP and EER are not bootstrapped).
CI_METRICS: tuple[str, ...] = ("auc", "acc", "fpr", "tpr", "pr")
#: How the intervals are made, as report.json states it.
CI_METHOD = (
    "stratified bootstrap (gender x race cell and label); basic intervals, max-min gaps as the projection"
    " of the compared groups' basic intervals"
)


class Report(dict[str, Any]):
    """report.json as a dict (it serializes as one), plus `to_frame()` for pandas users."""

    def to_frame(self) -> pd.DataFrame:
        """Every number as one tidy row: scope, attribute, group, metric, value, low, high, n."""
        return report_frame(self)


def report_frame(report: dict[str, Any]) -> pd.DataFrame:
    """The tidy table of a report dict (threshold, `at_eer` and `video` scopes; groups and fairness)."""
    rows: list[dict[str, Any]] = []

    def add(scope: str, section: dict[str, Any], ci: dict[str, Any]) -> None:
        for metric, value in section["overall"].items():
            iv = ci.get("overall", {}).get(metric)
            rows.append(_frame_row(scope, OVERALL, OVERALL, metric, value, iv, None))
        for attribute, groups in section["groups"].items():
            for group, values in groups.items():
                for metric in GROUP_METRICS:
                    iv = ci.get("groups", {}).get(attribute, {}).get(group, {}).get(metric)
                    rows.append(_frame_row(scope, attribute, group, metric, values[metric], iv, values["n"]))
        for attribute, metrics in section["fairness"].items():
            for metric, value in metrics.items():
                iv = ci.get("fairness", {}).get(attribute, {}).get(metric)
                rows.append(_frame_row(scope, attribute, None, metric, value, iv, None))

    add("threshold", report, report.get("ci") or {})
    if report.get("at_eer", {}).get("threshold") is not None:
        add("at_eer", report["at_eer"], {})
    if report.get("video"):
        add("video", report["video"], {})
    columns = ["scope", "attribute", "group", "metric", "value", "low", "high", "n"]
    return pd.DataFrame(rows, columns=columns)


def _frame_row(
    scope: str, attribute: str, group: str | None, metric: str, value: Any, iv: Any, n: int | None
) -> dict[str, Any]:
    low, high = iv if iv else (None, None)
    return {
        "scope": scope,
        "attribute": attribute,
        "group": group,
        "metric": metric,
        "value": value,
        "low": low,
        "high": high,
        "n": n,
    }


def _num(value: Any) -> float | None:
    """A JSON number, or None for NaN (a metric that is undefined for this group)."""
    value = float(value)
    return None if math.isnan(value) else value


def _threshold_value(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def group_metrics(stats: GroupStats) -> dict[str, np.ndarray]:
    return {name: fn(stats) for name, fn in GROUP_METRICS.items()}


def fairness_values(stats: dict[str, GroupStats]) -> dict[str, dict[str, np.ndarray]]:
    """attribute -> metric -> value (array with the stats' leading axes)."""
    overall = stats[OVERALL]
    return {
        attribute: {name: metric.compute(stats[attribute], overall) for name, metric in FAIRNESS_METRICS.items()}
        for attribute in ATTRIBUTES
    }


def threshold_section(stats: dict[str, GroupStats]) -> dict[str, Any]:
    """`overall`, `groups` and `fairness` at the stats' threshold."""
    overall = group_metrics(stats[OVERALL])
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute in ATTRIBUTES:
        s = stats[attribute]
        values = group_metrics(s)
        groups[attribute] = {
            name: {
                "n": int(s.n[i]),
                "n_real": int(s.n_neg[i]),
                "n_fake": int(s.n_pos[i]),
                **{metric: _num(v[i]) for metric, v in values.items()},
            }
            for i, name in enumerate(s.names)
        }
    fairness = {
        attribute: {name: _num(v) for name, v in metrics.items()}
        for attribute, metrics in fairness_values(stats).items()
    }
    return {
        "overall": {metric: _num(v[0]) for metric, v in overall.items()},
        "groups": groups,
        "fairness": fairness,
    }


def _why_null(stats: GroupStats, i: int, metric: str) -> str:
    if stats.n[i] == 0:
        return "no rows"
    if stats.n_neg[i] == 0:
        return "only fake rows"
    if stats.n_pos[i] == 0:
        return "only real rows"
    return NULL_REASONS[metric]


def left_out(stats: dict[str, GroupStats]) -> list[dict[str, Any]]:
    """Every group lacking real or fake rows: its null metrics, why, and that every fairness gap skips it."""
    entries: list[dict[str, Any]] = []
    for attribute in ATTRIBUTES:
        s = stats[attribute]
        null = {metric: np.isnan(v) for metric, v in group_metrics(s).items()}
        for i, group in enumerate(s.names):
            if s.n_pos[i] > 0 and s.n_neg[i] > 0:
                continue
            metrics = [m for m in GROUP_METRICS if null[m][i]]
            entries.append(
                {
                    "attribute": attribute,
                    "group": group,
                    "reason": _why_null(s, i, metrics[0]),
                    "null": metrics,
                    "left_out_of": list(FAIRNESS_METRICS),
                }
            )
    return entries


def unknown_counts(stats: dict[str, GroupStats]) -> dict[str, int]:
    """Rows in no group of each grouping (gender or race `unknown` or null): counted in `overall` only."""
    total = int(stats[OVERALL].n[0])
    return {attribute: total - int(np.sum(stats[attribute].n)) for attribute in ATTRIBUTES}


def find_warnings(
    stats: dict[str, GroupStats], scores: np.ndarray, threshold: float, min_group_n: int
) -> list[dict[str, Any]]:
    """Results that would read as findings but are artefacts of the data: each a kind and a sentence."""
    out: list[dict[str, Any]] = []
    overall = stats[OVERALL]
    n, predicted_fake = int(overall.n[0]), int(overall.tp[0] + overall.fp[0])
    if predicted_fake in (0, n):
        verdict = "fake" if predicted_fake else "real"
        out.append(
            {
                "kind": "single_predicted_class",
                "message": f"every prediction is {verdict} at threshold {threshold:g}: the rate gaps (F_FPR, F_DP,"
                " F_MEO, ...) are equal or zero by construction, not a sign of fairness",
            }
        )
    if scores.size and scores.min() == scores.max():
        out.append(
            {
                "kind": "constant_score",
                "message": f"every score is {scores[0]:g}: AUC 0.5 and EER 0.5 by construction",
            }
        )
    for attribute in ATTRIBUTES:
        s = stats[attribute]
        small = [f"{name} (n={int(s.n[i])})" for i, name in enumerate(s.names) if 0 < s.n[i] < min_group_n]
        if small:
            out.append(
                {
                    "kind": "small_groups",
                    "attribute": attribute,
                    "groups": [name for i, name in enumerate(s.names) if 0 < s.n[i] < min_group_n],
                    "message": f"{attribute} groups below n={min_group_n}: {', '.join(small)}; their rates move by"
                    " 1/n per row and the gaps they enter are noisy",
                }
            )
        lacking = [
            (name, "only fake rows" if s.n_neg[i] == 0 else "only real rows")
            for i, name in enumerate(s.names)
            if s.n[i] > 0 and min(s.n_pos[i], s.n_neg[i]) == 0
        ]
        if lacking:
            out.append(
                {
                    "kind": "one_class_groups",
                    "attribute": attribute,
                    "groups": [name for name, _ in lacking],
                    "message": f"{attribute} groups with one class, left out of every fairness gap: "
                    + ", ".join(f"{name} ({why})" for name, why in lacking),
                }
            )
    for attribute, count in unknown_counts(stats).items():
        if count and attribute != "intersectional":
            out.append(
                {
                    "kind": "unknown_attribute",
                    "attribute": attribute,
                    "rows": count,
                    "message": f"{count} rows have an unknown {attribute}: counted in overall, in no {attribute} group",
                }
            )
    return out


def one_class_groups(stats: dict[str, GroupStats]) -> dict[str, list[str]]:
    """Groups with rows of one class only (no AUC/EER), per attribute: named, never silently dropped."""
    return {
        attribute: [
            name
            for i, name in enumerate(stats[attribute].names)
            if stats[attribute].n[i] > 0 and min(stats[attribute].n_pos[i], stats[attribute].n_neg[i]) == 0
        ]
        for attribute in ATTRIBUTES
    }


def basic_interval(
    samples: np.ndarray, point: float | None, level: float, low: float | None = None, high: float | None = None
) -> list[float] | None:
    """[2 t - q_hi, 2 t - q_lo] from the bootstrap replicates, clipped to [low, high]; None without replicates."""
    if point is None:
        return None
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    q_lo, q_hi = np.percentile(finite, [tail, 100 - tail])
    lo, hi = 2 * point - q_hi, 2 * point - q_lo
    if low is not None:
        lo, hi = max(lo, low), max(hi, low)
    if high is not None:
        lo, hi = min(lo, high), min(hi, high)
    return [float(lo), float(hi)]


def _interval(samples: np.ndarray, point: float | None, level: float) -> list[float] | None:
    """A rate's interval: within [0, 1]."""
    return basic_interval(samples, point, level, 0.0, 1.0)


def _gap_interval(samples: np.ndarray, point: float | None, level: float) -> list[float] | None:
    """A fairness gap's interval: never below 0."""
    return basic_interval(samples, point, level, 0.0)


def group_basic_intervals(
    stats: GroupStats, points: GroupStats, level: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per group metric, (lo, hi) arrays of every group's basic interval, clipped to [0, 1]; one quantile pass."""
    metrics = list(CI_METRICS)
    replicates = np.stack([GROUP_METRICS[m](stats) for m in metrics], axis=1)  # (resamples, metrics, groups)
    estimates = np.stack([GROUP_METRICS[m](points) for m in metrics])
    keep = compared(points)
    tail = 100 * (1 - level) / 2
    q_lo = np.full(estimates.shape, np.nan)
    q_hi = np.full(estimates.shape, np.nan)
    if keep.any():  # compared groups are defined in every resample
        q_lo[:, keep], q_hi[:, keep] = np.percentile(replicates[:, :, keep], [tail, 100 - tail], axis=0)
    lo = np.clip(2 * estimates - q_hi, 0.0, 1.0)
    hi = np.clip(2 * estimates - q_lo, 0.0, 1.0)
    return {m: (lo[k], hi[k]) for k, m in enumerate(metrics)}


def spread_interval(
    bands: dict[str, tuple[np.ndarray, np.ndarray]], keep: np.ndarray, uses: Sequence[str]
) -> list[float] | None:
    """A max-min gap's interval (percent): the projection of each compared group's basic interval."""
    if keep.sum() < 2:
        return None
    bounds = []
    for metric in uses:
        lo, hi = bands[metric][0][keep], bands[metric][1][keep]
        bounds.append((max(0.0, float(lo.max() - hi.min())), float(hi.max() - lo.min())))
    return [100 * max(b[0] for b in bounds), 100 * max(b[1] for b in bounds)]


def fairness_intervals(
    boot: dict[str, GroupStats],
    points: dict[str, GroupStats],
    section: dict[str, Any],
    level: float,
    attributes: Sequence[str] = ATTRIBUTES,
) -> dict[str, dict[str, list[float] | None]]:
    """attribute -> fairness metric -> interval, each by the method its form calls for."""
    out: dict[str, dict[str, list[float] | None]] = {}
    for attribute in attributes:
        bands = group_basic_intervals(boot[attribute], points[attribute], level)
        keep = compared(points[attribute])
        out[attribute] = {}
        for name, metric in FAIRNESS_METRICS.items():
            estimate = section["fairness"][attribute][name]
            if estimate is None:
                out[attribute][name] = None
            elif metric.form == "spread":
                out[attribute][name] = spread_interval(bands, keep, metric.uses)
            else:
                replicates = metric.compute(boot[attribute], boot[OVERALL])
                out[attribute][name] = _gap_interval(replicates, estimate, level)
    return out


def confidence_intervals(
    boot: dict[str, GroupStats],
    points: dict[str, GroupStats],
    section: dict[str, Any],
    n_resamples: int,
    seed: Any,
    level: float,
    exact: bool,
) -> dict[str, Any]:
    """Basic bootstrap intervals of every bootstrapped metric, shaped like the point estimates."""
    ci_metrics = CI_METRICS

    def metric_intervals(stats: GroupStats, points: dict[str, Any], i: int) -> dict[str, Any]:
        values = group_metrics(stats)
        return {m: _interval(values[m][:, i], points[m], level) for m in ci_metrics}

    groups = {
        attribute: {
            name: metric_intervals(boot[attribute], section["groups"][attribute][name], i)
            for i, name in enumerate(boot[attribute].names)
        }
        for attribute in ATTRIBUTES
    }
    fairness = fairness_intervals(boot, points, section, level)
    return {
        "level": level,
        "resamples": n_resamples,
        "seed": seed,
        "method": CI_METHOD + ("" if exact else " (scores binned; within-bin AUC pairs at their mean)"),
        "overall": metric_intervals(boot[OVERALL], section["overall"], 0),
        "groups": groups,
        "fairness": fairness,
    }


def table_samples(boot: dict[str, GroupStats]) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the intra-vs-cross table's metrics (overall AUC/ACC, intersectional F_*)."""
    overall = group_metrics(boot[OVERALL])
    out = {m: overall[m][:, 0] for m in ("auc", "acc")}
    out.update(fairness_values(boot)["intersectional"])
    return out


def evaluate_predictions(
    preds: Predictions,
    threshold: float = 0.5,
    bootstrap: int = 0,
    seed: int | Sequence[int] = 0,
    ci_level: float = CI_LEVEL,
    bootstrap_bins: int = 256,
    progress: bool = False,
    min_group_n: int = MIN_GROUP_N,
) -> tuple[Report, dict[str, np.ndarray]]:
    """The report of checked predictions and the bootstrap replicates of its table metrics.

    The replicates (empty without a bootstrap) let `cross.py` give the cross-minus-intra gap an
    interval from independent resamples of each source.
    """
    labels, scores, cells = preds.labels, preds.scores, preds.cells
    order = score_order(scores)
    stats = group_stats(labels, scores, cells, threshold, order)
    section = threshold_section(stats)
    eer_threshold = float(stats[OVERALL].eer_threshold[0])
    report = Report({"n": int(labels.size), "threshold": float(threshold), **section})
    report["left_out"] = left_out(stats)
    report["one_class"] = one_class_groups(stats)
    report["unknown"] = unknown_counts(stats)
    report["warnings"] = find_warnings(stats, scores, threshold, min_group_n)
    report["ci"] = {}
    samples: dict[str, np.ndarray] = {}
    if bootstrap > 0:
        boot = bootstrap_stats(
            labels, scores, cells, threshold, bootstrap, seed, max_bins=bootstrap_bins, order=order, progress=progress
        )
        seed_value = seed if isinstance(seed, int) else list(seed)
        report["ci"] = confidence_intervals(boot.stats, stats, section, bootstrap, seed_value, ci_level, boot.exact)
        samples = table_samples(boot.stats)
    report["at_eer"] = (
        {
            "threshold": _threshold_value(eer_threshold),
            **threshold_section(at_threshold(stats, cells, labels, scores, eer_threshold)),
        }
        if not math.isnan(eer_threshold)
        else {"threshold": None}
    )
    if preds.video is not None and pd.notna(preds.video).any():
        from .video import video_predictions

        videos, without = video_predictions(preds)
        v_stats = group_stats(videos.labels, videos.scores, videos.cells, threshold)
        report["video"] = {
            "n": len(videos),
            "rows_without_video": without,
            **threshold_section(v_stats),
            "left_out": left_out(v_stats),
        }
    report["by_source"] = {}
    return report, samples


def report_from_predictions(
    preds: Predictions,
    threshold: float = 0.5,
    bootstrap: int = 0,
    seed: int | Sequence[int] = 0,
    ci_level: float = CI_LEVEL,
    bootstrap_bins: int = 256,
    progress: bool = False,
    min_group_n: int = MIN_GROUP_N,
) -> Report:
    """The report of checked predictions (the CLI's entry; `fairness_report` checks arrays first)."""
    return evaluate_predictions(preds, threshold, bootstrap, seed, ci_level, bootstrap_bins, progress, min_group_n)[0]


def fairness_report(
    labels: Sequence[object] | np.ndarray,
    scores: Sequence[object] | np.ndarray,
    genders: Sequence[object] | np.ndarray,
    races: Sequence[object] | np.ndarray,
    threshold: float = 0.5,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
    bootstrap: int = 0,
    seed: int = 0,
    *,
    ci_level: float = CI_LEVEL,
    bootstrap_bins: int = 256,
    progress: bool = False,
    min_group_n: int = MIN_GROUP_N,
    videos: Sequence[object] | np.ndarray | None = None,
) -> Report:
    """Detection and fairness metrics of predictions, shaped like report.json (`.to_frame()`: a tidy table).

    `labels` 0 real / 1 fake, `scores` P(fake) in [0, 1], `genders`/`races` taxonomy names or
    `unknown` (null counts as `unknown`): such a row counts in `overall` and in the groups of its
    known attribute only, and `unknown` counts it. Predicted fake means score >= `threshold`; the
    `at_eer` section repeats the threshold metrics at the overall EER threshold. `bootstrap` > 0
    adds basic bootstrap intervals (`ci`, level `ci_level`) from that many stratified resamples
    drawn with `seed`. `videos` (a video id per row) adds `video`: the same sections on the mean
    frame score of each video. `warnings` names degenerate results (one predicted class, a constant
    score, groups below `min_group_n` rows, one-class groups, unknown attributes).
    Bad input raises `fairforge.errors.ManifestError` naming the row and column.
    """
    preds = check_predictions(labels, scores, genders, races, taxonomy, file="<fairness_report>", videos=videos)
    return report_from_predictions(
        preds,
        threshold,
        bootstrap,
        seed,
        ci_level=ci_level,
        bootstrap_bins=bootstrap_bins,
        progress=progress,
        min_group_n=min_group_n,
    )
