"""Per-epoch validation through evaluate's library API, and the best-checkpoint rule.

Metrics are exactly those `fairforge evaluate` reports (one implementation, no second copy to
drift): overall AUC/ACC/EER/AP and the intersectional fairness gaps (F_FPR, F_OAE, F_DP, F_MEO, ...), on
all validation rows and per `source` when there are several (intra- vs cross-dataset at a glance).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fairforge.config.train import SelectConfig
from fairforge.evaluate.metrics import FAIRNESS_METRICS
from fairforge.taxonomy import Taxonomy

#: Overall statistics and intersectional fairness metrics logged every epoch.
OVERALL_KEYS = ("auc", "acc", "eer", "ap")
FAIRNESS_KEYS = tuple(FAIRNESS_METRICS)


def report(pred: pd.DataFrame, threshold: float, taxonomy: Taxonomy) -> dict[str, Any]:
    """evaluate's report of one set of validation predictions, over the training taxonomy's groups."""
    from fairforge.evaluate import fairness_report

    return fairness_report(
        pred["label"].to_numpy(),
        pred["score"].to_numpy(),
        pred["gender"].to_numpy(),
        pred["race"].to_numpy(),
        threshold=threshold,
        taxonomy=taxonomy,
    )


def _flat(rep: dict[str, Any], prefix: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"{prefix}/{k}": rep["overall"].get(k) for k in OVERALL_KEYS}
    out.update({f"{prefix}/{k}": rep["fairness"]["intersectional"].get(k) for k in FAIRNESS_KEYS})
    return out


def validation_metrics(
    pred: pd.DataFrame, taxonomy: Taxonomy, threshold: float = 0.5
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """(flat scalars `val/auc`, `val/F_FPR`, `val/<source>/auc`, ...; the full reports by scope)."""
    reports = {"all": report(pred, threshold, taxonomy)}
    sources = sorted(pred["source"].unique())
    if len(sources) > 1:
        for source in sources:
            part = pred[pred["source"] == source]
            if part["label"].nunique() == 2:
                reports[source] = report(part, threshold, taxonomy)
    flat: dict[str, float | None] = {}
    for scope, rep in reports.items():
        flat.update(_flat(rep, "val" if scope == "all" else f"val/{scope}"))
    return flat, reports


def selection_score(flat: dict[str, float | None], select: SelectConfig) -> float | None:
    """The epoch's score under the rule (higher is better), or None when it is not eligible."""
    auc = flat.get("val/auc")
    if auc is None:
        return None
    if select.rule == "auc":
        return float(auc)
    value = flat.get(f"val/{select.metric}")
    if value is None or value > select.bound:
        return None
    return float(auc)


__all__ = ["report", "selection_score", "validation_metrics"]
