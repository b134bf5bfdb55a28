"""One-class groups follow the field's reference rule (PG-FDD's `fairness_metrics.py`).

There a group whose metrics cannot be computed (with the scikit-learn it was written for,
`roc_auc_score` raised "Only one class present"; newer releases warn and return NaN, so the
test checks the class count itself) has an empty metrics dict, and every gap of its grouping, max-min and sum forms alike, skips it.
The reference is re-stated here with sklearn per group and compared on random predictions.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score

from fairforge.evaluate import FAIRNESS_METRICS, fairness_report
from fairforge.taxonomy import DEFAULT_TAXONOMY


def reference_group(y: np.ndarray, s: np.ndarray) -> dict[str, float] | None:
    """The reference's per-group metrics, or None where it cannot compute them."""
    if np.unique(y).size < 2:
        return None
    auc = roc_auc_score(y, s)
    tn, fp, fn, tp = confusion_matrix(y, s >= 0.5, labels=[0, 1]).ravel()
    return {
        "auc": auc,
        "acc": accuracy_score(y, s >= 0.5),
        "fpr": fp / (fp + tn),
        "tpr": tp / (tp + fn),
        "pr": (tp + fp) / y.size,
    }


def reference_gaps(y: np.ndarray, s: np.ndarray, keys: np.ndarray, names: list[str]) -> dict[str, float]:
    everyone = reference_group(y, s)
    groups = [m for m in (reference_group(y[keys == n], s[keys == n]) for n in names if (keys == n).any()) if m]

    def spread(metric: str) -> float:
        values = [g[metric] for g in groups]
        return 100 * (max(values) - min(values))

    efpr = sum(abs(g["fpr"] - everyone["fpr"]) for g in groups)
    etpr = sum(abs(g["tpr"] - everyone["tpr"]) for g in groups)
    return {
        "F_FPR": spread("fpr"),
        "F_OAE": spread("acc"),
        "F_DP": spread("pr"),
        "F_MEO": max(spread("fpr"), spread("tpr")),
        "F_AUC": spread("auc"),
        "F_EFPR": 100 * efpr,
        "F_EO": 100 * (efpr + etpr),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_class_groups_are_left_out_of_every_gap_as_the_reference_does(seed):
    rng = np.random.default_rng(seed)
    n = 4000
    genders = rng.choice(DEFAULT_TAXONOMY.genders, n)
    races = rng.choice(DEFAULT_TAXONOMY.races, n)
    y = rng.integers(0, 2, n)
    y[(genders == "female") & (races == "Black")] = 1  # fake only
    y[races == "Others"] = 0  # real only: two intersectional groups and one race group lack fakes
    s = np.clip(rng.normal(0.5 + 0.15 * (2 * y - 1) + 0.05 * (races == "Asian"), 0.25), 0, 1)
    r = fairness_report(y, s, genders, races)
    keys = {
        "intersectional": np.char.add(np.char.add(genders.astype(str), "-"), races.astype(str)),
        "gender": genders,
        "race": races,
    }
    names = {
        "intersectional": list(DEFAULT_TAXONOMY.groups),
        "gender": list(DEFAULT_TAXONOMY.genders),
        "race": list(DEFAULT_TAXONOMY.races),
    }
    for attribute in ("intersectional", "gender", "race"):
        expected = reference_gaps(y, s, keys[attribute], names[attribute])
        for metric in FAIRNESS_METRICS:
            assert r["fairness"][attribute][metric] == pytest.approx(expected[metric], abs=1e-9), (attribute, metric)
    left = {(e["attribute"], e["group"]): e for e in r["left_out"]}
    assert set(left) == {
        ("intersectional", "female-Black"),
        ("intersectional", "male-Others"),
        ("intersectional", "female-Others"),
        ("race", "Others"),
    }
    assert left[("race", "Others")]["reason"] == "only real rows"
    assert all(e["left_out_of"] == list(FAIRNESS_METRICS) for e in left.values())


def test_the_old_rule_would_differ():
    """Guards the test above: keeping a one-class group's defined rates changes F_DP, so the rule is observable."""
    rng = np.random.default_rng(4)
    n = 3000
    genders = rng.choice(DEFAULT_TAXONOMY.genders, n)
    races = rng.choice(DEFAULT_TAXONOMY.races, n)
    y = rng.integers(0, 2, n)
    fake_only = (genders == "female") & (races == "Black")
    y[fake_only] = 1
    s = np.clip(rng.normal(0.5 + 0.2 * (2 * y - 1), 0.2), 0, 1)
    r = fairness_report(y, s, genders, races)
    prs = [g["pr"] for g in r["groups"]["intersectional"].values()]
    with_it = 100 * (max(prs) - min(prs))
    assert r["fairness"]["intersectional"]["F_DP"] < with_it - 5
