"""The report dict (report.json's shape) from predictions: the library API `fairness_report`.

`train` calls `fairness_report` every epoch on its validation predictions, so this module stays
light: numpy only, no plotting, no file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fairforge.taxonomy import DEFAULT_TAXONOMY, Taxonomy

from .bootstrap import bootstrap_stats
from .groups import ATTRIBUTES, OVERALL
from .inputs import Predictions, check_predictions
from .metrics import FAIRNESS_METRICS, GROUP_METRICS, NULL_REASONS
from .stats import GroupStats, at_threshold, group_stats, score_order

#: CI level of the percentile intervals.
CI_LEVEL = 0.95


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
    """Every group with a null metric: which metrics are null, why, and which fairness metrics skip it."""
    entries: list[dict[str, Any]] = []
    for attribute in ATTRIBUTES:
        s = stats[attribute]
        null = {metric: np.isnan(v) for metric, v in group_metrics(s).items()}
        for i, group in enumerate(s.names):
            metrics = [m for m in GROUP_METRICS if null[m][i]]
            if not metrics:
                continue
            skipped_by = [name for name, fm in FAIRNESS_METRICS.items() if any(null[m][i] for m in fm.uses)]
            entries.append(
                {
                    "attribute": attribute,
                    "group": group,
                    "reason": _why_null(s, i, metrics[0]),
                    "null": metrics,
                    "left_out_of": skipped_by,
                }
            )
    return entries


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


def _interval(samples: np.ndarray, point: float | None, level: float) -> list[float] | None:
    if point is None:
        return None
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


def confidence_intervals(
    boot: dict[str, GroupStats], section: dict[str, Any], n_resamples: int, seed: int, level: float, exact: bool
) -> dict[str, Any]:
    """Percentile intervals of every bootstrapped metric, shaped like the point estimates."""
    ci_metrics = ("auc", "acc", "fpr", "tpr", "pr")

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
    fairness = {
        attribute: {name: _interval(v, section["fairness"][attribute][name], level) for name, v in metrics.items()}
        for attribute, metrics in fairness_values(boot).items()
    }
    return {
        "level": level,
        "resamples": n_resamples,
        "seed": seed,
        "method": "percentile bootstrap, stratified by gender x race cell and label"
        + ("" if exact else " (scores binned; within-bin AUC pairs at their mean)"),
        "overall": metric_intervals(boot[OVERALL], section["overall"], 0),
        "groups": groups,
        "fairness": fairness,
    }


def report_from_predictions(
    preds: Predictions,
    threshold: float = 0.5,
    bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = CI_LEVEL,
    bootstrap_bins: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """The report of checked predictions (the CLI's entry; `fairness_report` checks arrays first)."""
    labels, scores, cells = preds.labels, preds.scores, preds.cells
    order = score_order(scores)
    stats = group_stats(labels, scores, cells, threshold, order)
    section = threshold_section(stats)
    eer_threshold = float(stats[OVERALL].eer_threshold[0])
    report: dict[str, Any] = {"n": int(labels.size), "threshold": float(threshold), **section}
    report["left_out"] = left_out(stats)
    report["one_class"] = one_class_groups(stats)
    report["ci"] = {}
    if bootstrap > 0:
        boot = bootstrap_stats(
            labels, scores, cells, threshold, bootstrap, seed, max_bins=bootstrap_bins, order=order, progress=progress
        )
        report["ci"] = confidence_intervals(boot.stats, section, bootstrap, seed, ci_level, boot.exact)
    report["at_eer"] = (
        {
            "threshold": _threshold_value(eer_threshold),
            **threshold_section(at_threshold(stats, cells, labels, scores, eer_threshold)),
        }
        if not math.isnan(eer_threshold)
        else {"threshold": None}
    )
    report["by_source"] = {}
    return report


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
) -> dict[str, Any]:
    """Detection and fairness metrics of predictions, shaped like report.json.

    `labels` 0 real / 1 fake, `scores` P(fake) in [0, 1], `genders`/`races` taxonomy names or
    `unknown` (null counts as `unknown`): such a row counts in `overall` and in the groups of its
    known attribute only. Predicted fake means score >= `threshold`; the `at_eer` section repeats
    the threshold metrics at the overall EER threshold. `bootstrap` > 0 adds 95% percentile
    intervals (`ci`) from that many stratified resamples drawn with `seed`.
    Bad input raises `fairforge.errors.ManifestError` naming the row and column.
    """
    preds = check_predictions(labels, scores, genders, races, taxonomy, file="<fairness_report>")
    return report_from_predictions(
        preds, threshold, bootstrap, seed, ci_level=ci_level, bootstrap_bins=bootstrap_bins, progress=progress
    )
