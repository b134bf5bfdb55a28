"""Degenerate results are named, not reported as findings: each warning fires on its case and not otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from fairforge.evaluate import fairness_report
from fairforge.taxonomy import DEFAULT_TAXONOMY


def _data(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.5 + 0.2 * (2 * y - 1), 0.2), 0, 1)
    return y, s, rng.choice(DEFAULT_TAXONOMY.genders, n), rng.choice(DEFAULT_TAXONOMY.races, n)


def kinds(report) -> list[str]:
    return [w["kind"] for w in report["warnings"]]


def test_healthy_predictions_have_no_warnings():
    assert fairness_report(*_data())["warnings"] == []


def test_a_model_that_calls_everything_real_is_not_perfectly_fair():
    y, s, g, r = _data()
    report = fairness_report(y, s * 0.4, g, r)  # every score below 0.5
    f = report["fairness"]["intersectional"]
    assert f["F_FPR"] == f["F_DP"] == f["F_MEO"] == 0.0
    (warning,) = [w for w in report["warnings"] if w["kind"] == "single_predicted_class"]
    assert "every prediction is real at threshold 0.5" in warning["message"]
    assert "by construction" in warning["message"]


def test_small_groups_are_named_with_their_size():
    y, s, g, r = _data()
    keep = np.ones(y.size, dtype=bool)
    small = np.flatnonzero((g == "female") & (r == "Black"))
    keep[small[10:]] = False  # female-Black keeps 10 rows
    report = fairness_report(y[keep], s[keep], g[keep], r[keep], min_group_n=30)
    (warning,) = [w for w in report["warnings"] if w["kind"] == "small_groups"]
    assert warning["attribute"] == "intersectional" and warning["groups"] == ["female-Black"]
    assert "female-Black (n=10)" in warning["message"] and "n=30" in warning["message"]
    assert "small_groups" not in kinds(fairness_report(y[keep], s[keep], g[keep], r[keep], min_group_n=10))


def test_n_of_two_per_group_warns_for_every_group():
    genders = np.repeat(DEFAULT_TAXONOMY.genders, 8)
    races = np.tile(np.repeat(DEFAULT_TAXONOMY.races, 2), 2)
    y = np.tile([0, 1], 8)
    s = np.random.default_rng(1).random(16)
    report = fairness_report(y, s, genders, races)
    by_attribute = {w["attribute"]: w["groups"] for w in report["warnings"] if w["kind"] == "small_groups"}
    assert by_attribute["intersectional"] == list(DEFAULT_TAXONOMY.groups)


def test_one_class_groups_warn_and_name_the_missing_class():
    y, s, g, r = _data()
    y[(g == "male") & (r == "Asian")] = 0
    report = fairness_report(y, s, g, r)
    (warning,) = [w for w in report["warnings"] if w["kind"] == "one_class_groups"]
    assert warning["groups"] == ["male-Asian"]
    assert "male-Asian (only real rows)" in warning["message"] and "every fairness gap" in warning["message"]


def test_constant_scores_warn_and_have_eer_one_half():
    y, _, g, r = _data(400)
    report = fairness_report(y, np.full(y.size, 0.7), g, r)
    assert report["overall"]["eer"] == 0.5 and report["overall"]["auc"] == 0.5
    for group in report["groups"]["intersectional"].values():
        assert group["eer"] == 0.5
    assert {"constant_score", "single_predicted_class"} <= set(kinds(report))


@pytest.mark.parametrize("attribute", ["gender", "race"])
def test_null_attributes_are_unknown_and_counted(attribute):
    y, s, g, r = _data(500)
    values = (g if attribute == "gender" else r).astype(object)
    values[:7] = None
    args = (values, r) if attribute == "gender" else (g, values)
    report = fairness_report(y, s, *args)
    assert report["unknown"][attribute] == 7 and report["n"] == 500
    (warning,) = [w for w in report["warnings"] if w["kind"] == "unknown_attribute"]
    assert warning["rows"] == 7 and f"7 rows have an unknown {attribute}" in warning["message"]
