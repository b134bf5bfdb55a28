"""Fairness metrics against fairlearn, and null rates named in `left_out` (never silently dropped)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate_difference,
)
from sklearn.metrics import accuracy_score

from fairforge.evaluate import FAIRNESS_METRICS, GROUP_METRICS, fairness_report
from fairforge.taxonomy import DEFAULT_TAXONOMY


@pytest.fixture(scope="module")
def random_predictions():
    rng = np.random.default_rng(7)
    n = 6000
    frame = pd.DataFrame(
        {
            "label": rng.integers(0, 2, n),
            "gender": rng.choice(DEFAULT_TAXONOMY.genders, n),
            "race": rng.choice(DEFAULT_TAXONOMY.races, n),
        }
    )
    bias = frame["race"].map({"Asian": 0.05, "White": 0.0, "Black": -0.08, "Others": 0.03}).to_numpy()
    frame["score"] = np.clip(rng.normal(0.5 + 0.2 * (2 * frame["label"] - 1) + bias, 0.25), 0, 1)
    return frame


@pytest.mark.parametrize(
    ("attribute", "columns"),
    [("intersectional", ["gender", "race"]), ("gender", ["gender"]), ("race", ["race"])],
)
def test_fairness_equals_fairlearn(random_predictions, attribute, columns):
    df = random_predictions
    report = fairness_report(df["label"], df["score"], df["gender"], df["race"], threshold=0.5)
    f = report["fairness"][attribute]
    y, y_pred = df["label"].to_numpy(), (df["score"] >= 0.5).astype(int).to_numpy()
    sensitive = df[columns]
    assert f["F_DP"] == pytest.approx(
        100 * demographic_parity_difference(y, y_pred, sensitive_features=sensitive), abs=1e-9
    )
    assert f["F_MEO"] == pytest.approx(
        100 * equalized_odds_difference(y, y_pred, sensitive_features=sensitive), abs=1e-9
    )
    frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=y_pred, sensitive_features=sensitive)
    assert f["F_OAE"] == pytest.approx(100 * frame.difference(), abs=1e-9)
    assert f["F_FPR"] == pytest.approx(
        100 * false_positive_rate_difference(y, y_pred, sensitive_features=sensitive), abs=1e-9
    )


def test_report_shape_matches_the_contract(random_predictions):
    df = random_predictions
    r = fairness_report(df["label"], df["score"], df["gender"], df["race"])
    assert {"n", "threshold", "overall", "groups", "fairness", "left_out", "ci", "by_source"} <= set(r)
    assert list(r["overall"]) == list(GROUP_METRICS)
    assert list(r["groups"]["intersectional"]) == list(DEFAULT_TAXONOMY.groups)
    assert list(r["groups"]["gender"]) == list(DEFAULT_TAXONOMY.genders)
    assert list(r["groups"]["race"]) == list(DEFAULT_TAXONOMY.races)
    for group in r["groups"]["intersectional"].values():
        assert list(group) == ["n", "n_real", "n_fake", *GROUP_METRICS]
    for attribute in ("intersectional", "gender", "race"):
        assert list(r["fairness"][attribute]) == list(FAIRNESS_METRICS)
    assert r["left_out"] == [] and r["ci"] == {}


def test_null_rates_are_left_out_and_named():
    # female-Black has only fake rows (no FPR, no AUC); male-Others has no rows at all.
    genders = ["male"] * 6 + ["female"] * 6 + ["female"] * 3
    races = ["Asian"] * 3 + ["White"] * 3 + ["Asian"] * 3 + ["White"] * 3 + ["Black"] * 3
    labels = [0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1]
    scores = [0.2, 0.7, 0.4, 0.6, 0.9, 0.1, 0.8, 0.3, 0.55, 0.45, 0.65, 0.35, 0.9, 0.2, 0.6]
    r = fairness_report(labels, scores, genders, races)
    fb = r["groups"]["intersectional"]["female-Black"]
    assert fb["n_real"] == 0 and fb["fpr"] is None and fb["auc"] is None and fb["eer"] is None
    assert fb["tpr"] == pytest.approx(2 / 3)
    assert r["one_class"]["intersectional"] == ["female-Black"]
    entries = {(e["attribute"], e["group"]): e for e in r["left_out"]}
    fb_entry = entries[("intersectional", "female-Black")]
    assert fb_entry["reason"] == "only fake rows"
    assert set(fb_entry["null"]) == {"auc", "eer", "fpr"}
    assert fb_entry["left_out_of"] == list(FAIRNESS_METRICS)
    assert entries[("intersectional", "male-Others")]["reason"] == "no rows"
    # every gap compares the four groups with both classes; female-Black's defined PR is not used either
    both = ("male-Asian", "male-White", "female-Asian", "female-White")
    for metric, key in (("F_FPR", "fpr"), ("F_DP", "pr"), ("F_OAE", "acc")):
        values = [r["groups"]["intersectional"][g][key] for g in both]
        assert r["fairness"]["intersectional"][metric] == pytest.approx(100 * (max(values) - min(values)))


def test_fairness_needs_two_groups():
    r = fairness_report([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.4], ["male"] * 4, ["White"] * 4)
    assert all(v is None for v in r["fairness"]["intersectional"].values())
    assert r["overall"]["auc"] == 0.75
