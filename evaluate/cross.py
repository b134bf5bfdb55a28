"""Intra- vs cross-dataset evaluation and the fairness generalization gap.

A detector trained on one dataset (the intra source, e.g. `ffpp`) is tested on it and on others
(`celebdf`, `dfdc`, `dfd`). The question the field asks is how much fairness degrades off the
training distribution: the gap is cross minus intra, per metric, for every cross source and for
their mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fairforge.errors import ManifestError

from .inputs import Predictions
from .metrics import FAIRNESS_METRICS
from .report import basic_interval, evaluate_predictions

#: Columns of the intra-vs-cross table: detection metrics (overall) then intersectional fairness.
TABLE_METRICS: tuple[str, ...] = ("auc", "acc", "eer", "ap", *FAIRNESS_METRICS)


def table_row(report: dict[str, Any]) -> dict[str, float | None]:
    row = {m: report["overall"][m] for m in ("auc", "acc", "eer", "ap")}
    row.update({m: report["fairness"]["intersectional"][m] for m in FAIRNESS_METRICS})
    return row


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def cross_dataset(
    preds: Predictions,
    intra: str | Sequence[str] | None = None,
    threshold: float = 0.5,
    bootstrap: int = 0,
    seed: int = 0,
    **report_options: Any,
) -> dict[str, Any]:
    """Per-source reports, the intra-vs-cross table and the gap (cross minus intra).

    `intra` names the sources the detector was trained on: the synthetic set and every dataset
    with `role: train` (their held-out test rows are intra-dataset results); every other source
    (a `role: test` dataset) is cross. Several may be given; the first is the reference the gap
    is measured from. Default: the source of the first row (the first predictions file's).
    An intra name absent from the predictions is ignored unless no intra source is present.
    """
    sources = list(preds.source_names)
    names = [sources[0]] if intra is None else ([intra] if isinstance(intra, str) else list(intra))
    present = [s for s in names if s in sources]
    if not present:
        raise ManifestError(
            preds.file,
            f"--intra {' '.join(repr(n) for n in names)} is not a source of the predictions {sources}",
            column="source",
        )
    intra_sources = set(present)
    intra = present[0]
    # Each source is resampled on its own stream (seed, index), so the sources' resamples are independent.
    evaluated = {
        source: evaluate_predictions(preds.of_source(source), threshold, bootstrap, (seed, i), **report_options)
        for i, source in enumerate(sources)
    }
    reports = {source: report for source, (report, _) in evaluated.items()}
    table = {
        source: {
            "role": "intra" if source in intra_sources else "cross",
            "n": reports[source]["n"],
            **table_row(reports[source]),
        }
        for source in sources
    }
    cross = [s for s in sources if s not in intra_sources]
    gap: dict[str, Any] = {}
    if cross:
        per_source = {s: {m: _difference(table[s][m], table[intra][m]) for m in TABLE_METRICS} for s in cross}
        mean_cross: dict[str, float | None] = {}
        for m in TABLE_METRICS:
            values = [table[s][m] for s in cross]
            mean_cross[m] = None if any(v is None for v in values) else float(np.mean(values))
        gap = {
            "per_source": per_source,
            "cross_mean": mean_cross,
            "mean": {m: _difference(mean_cross[m], table[intra][m]) for m in TABLE_METRICS},
        }
    level = report_options.get("ci_level", 0.95)
    samples = {source: replicates for source, (_, replicates) in evaluated.items()}
    ci = table_intervals(reports, gap, samples, intra, cross, level) if bootstrap > 0 else {}
    intra_list = [s for s in sources if s in intra_sources]
    return {
        "intra": intra,
        "intra_sources": intra_list,
        "cross": cross,
        "table": table,
        "gap": gap,
        "sources": reports,
        "ci": ci,
    }


def table_intervals(
    reports: dict[str, Any],
    gap: dict[str, Any],
    samples: dict[str, dict[str, np.ndarray]],
    intra: str,
    cross: list[str],
    level: float,
) -> dict[str, Any]:
    """Intervals of every bootstrapped table value (each source's own report's) and of the gaps.

    A gap's replicates pair the i-th resample of the cross source with the i-th of the intra
    source; the two are drawn independently, as the two test sets are independent samples, and
    the gap gets the basic interval of those differences.
    """
    metrics = list(samples[intra])

    def own(report: dict[str, Any], metric: str) -> list[float] | None:
        ci = report["ci"]
        return ci["fairness"]["intersectional"][metric] if metric.startswith("F_") else ci["overall"][metric]

    out: dict[str, Any] = {"table": {s: {m: own(report, m) for m in metrics} for s, report in reports.items()}}
    if cross:
        per_source = {
            s: {m: basic_interval(samples[s][m] - samples[intra][m], gap["per_source"][s][m], level) for m in metrics}
            for s in cross
        }
        mean = {
            m: basic_interval(
                np.mean([samples[s][m] for s in cross], axis=0) - samples[intra][m], gap["mean"][m], level
            )
            for m in metrics
        }
        out["gap"] = {"per_source": per_source, "mean": mean}
    return out
