"""The vectorized core against hand-computed confusion matrices and scikit-learn (the field's reference)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from fairforge.evaluate import fairness_report
from fairforge.evaluate.groups import make_cells
from fairforge.evaluate.stats import group_stats
from fairforge.taxonomy import DEFAULT_TAXONOMY

# Two groups of four rows; every count below is worked out by hand at threshold 0.5.
LABELS = [1, 1, 0, 0, 1, 0, 0, 0]
SCORES = [0.9, 0.4, 0.6, 0.1, 0.7, 0.8, 0.3, 0.5]
GENDERS = ["male"] * 4 + ["female"] * 4
RACES = ["Asian"] * 4 + ["White"] * 4


def reference_eer(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """DeepfakeBench's EER: fpr at nanargmin |fnr - fpr| over sklearn's roc_curve, and its threshold."""
    fpr, tpr, thr = skm.roc_curve(y, s, pos_label=1)
    i = np.nanargmin(np.absolute((1 - tpr) - fpr))
    return fpr[i], thr[i]


def test_hand_computed_confusion_and_rates():
    r = fairness_report(LABELS, SCORES, GENDERS, RACES)
    ma = r["groups"]["intersectional"]["male-Asian"]
    # male-Asian: TP 0.9, FN 0.4, FP 0.6, TN 0.1
    assert (ma["n"], ma["n_real"], ma["n_fake"]) == (4, 2, 2)
    assert ma["fpr"] == 0.5 and ma["tpr"] == 0.5 and ma["acc"] == 0.5 and ma["pr"] == 0.5
    assert ma["auc"] == 0.75  # pairs (0.9>0.6, 0.9>0.1, 0.4>0.1) of 4
    assert ma["eer"] == 0.5  # ROC point (0.5, 0.5) at threshold 0.6
    fw = r["groups"]["intersectional"]["female-White"]
    # female-White: TP 0.7, FP 0.8 and 0.5 (>= threshold), TN 0.3
    assert fw["fpr"] == pytest.approx(2 / 3) and fw["tpr"] == 1.0 and fw["acc"] == 0.5 and fw["pr"] == 0.75
    assert fw["auc"] == pytest.approx(2 / 3)
    assert r["overall"]["fpr"] == pytest.approx(3 / 5) and r["overall"]["tpr"] == pytest.approx(2 / 3)
    assert r["overall"]["acc"] == 0.5 and r["overall"]["pr"] == pytest.approx(5 / 8)
    f = r["fairness"]["intersectional"]
    assert f["F_FPR"] == pytest.approx(100 * (2 / 3 - 1 / 2))
    assert f["F_OAE"] == pytest.approx(0.0)
    assert f["F_DP"] == pytest.approx(25.0)
    assert f["F_MEO"] == pytest.approx(50.0)
    assert f["F_AUC"] == pytest.approx(100 * (0.75 - 2 / 3))
    efpr = 100 * (abs(1 / 2 - 3 / 5) + abs(2 / 3 - 3 / 5))
    assert f["F_EFPR"] == pytest.approx(efpr)
    assert f["F_EO"] == pytest.approx(efpr + 100 * (abs(1 / 2 - 2 / 3) + abs(1 - 2 / 3)))
    # gender and race groups coincide with the two intersectional groups here
    assert r["fairness"]["gender"] == pytest.approx(f)
    assert r["fairness"]["race"]["F_DP"] == pytest.approx(25.0)


def test_threshold_is_inclusive_and_configurable():
    at_half = fairness_report(LABELS, SCORES, GENDERS, RACES, threshold=0.5)
    above = fairness_report(LABELS, SCORES, GENDERS, RACES, threshold=0.55)
    assert at_half["groups"]["intersectional"]["female-White"]["fpr"] == pytest.approx(2 / 3)
    assert above["groups"]["intersectional"]["female-White"]["fpr"] == pytest.approx(1 / 3)
    assert above["threshold"] == 0.55


def test_eer_threshold_section():
    y = np.array(LABELS)
    s = np.array(SCORES)
    r = fairness_report(y, s, GENDERS, RACES)
    eer, thr = reference_eer(y, s)
    assert r["overall"]["eer"] == eer
    assert r["at_eer"]["threshold"] == thr
    pred = s >= thr
    assert r["at_eer"]["overall"]["fpr"] == pytest.approx(pred[y == 0].mean())
    assert r["at_eer"]["overall"]["tpr"] == pytest.approx(pred[y == 1].mean())


@pytest.mark.parametrize("ties", ["none", "coarse", "label-dependent"])
def test_ranking_stats_equal_sklearn_per_group(ties):
    rng = np.random.default_rng({"none": 0, "coarse": 1, "label-dependent": 2}[ties])
    for _ in range(8):
        n = int(rng.integers(20, 1500))
        y = rng.integers(0, 2, n)
        s = rng.random(n)
        if ties == "coarse":
            s = np.round(s, 1)
        elif ties == "label-dependent":
            s = np.round(0.5 * s + 0.4 * y * s, 2)
        genders = np.array(["male", "female", "unknown"])[rng.integers(0, 3, n)]
        races = np.array(["Asian", "White", "Black", "Others", "unknown"])[rng.integers(0, 5, n)]
        cells = make_cells(genders, races, DEFAULT_TAXONOMY)
        stats = group_stats(y, s, cells, 0.5)
        for attribute, gs in stats.items():
            codes = cells.group_codes(attribute)
            for i in range(len(gs.names)):
                m = codes == i
                if len(set(y[m])) < 2:
                    assert np.isnan(gs.auc[i]) and np.isnan(gs.eer[i])
                    continue
                assert gs.auc[i] == pytest.approx(skm.roc_auc_score(y[m], s[m]), abs=1e-12)
                assert gs.ap[i] == pytest.approx(skm.average_precision_score(y[m], s[m]), abs=1e-12)
                eer, thr = reference_eer(y[m], s[m])
                assert gs.eer[i] == eer and gs.eer_threshold[i] == thr
                pred = s[m] >= 0.5
                assert gs.tp[i] == (pred & (y[m] == 1)).sum() and gs.fp[i] == (pred & (y[m] == 0)).sum()


def test_a_constant_score_has_eer_one_half_and_is_warned_about():
    """The reference's argmin picks roc_curve's origin (EER 0, a perfect detector); the diagonal's EER is 0.5."""
    y = np.array([0, 1, 0, 1])
    s = np.full(4, 0.3)
    r = fairness_report(y, s, ["male"] * 4, ["White"] * 4)
    assert reference_eer(y, s)[0] == 0.0
    assert r["overall"]["eer"] == 0.5 and r["overall"]["auc"] == 0.5
    assert r["at_eer"]["threshold"] == 0.3  # the constant score itself: everything predicted fake there
    assert r["at_eer"]["overall"]["pr"] == 1.0
    kinds = [w["kind"] for w in r["warnings"]]
    assert "constant_score" in kinds and "single_predicted_class" in kinds


def test_unknown_attributes_count_overall_only():
    r = fairness_report(
        [0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4], ["male", "unknown", "female", None], ["Asian", "White", "unknown", "Black"]
    )
    assert r["n"] == 4
    gender = r["groups"]["gender"]
    assert gender["male"]["n"] == 1 and gender["female"]["n"] == 1
    race = r["groups"]["race"]
    assert race["Asian"]["n"] == 1 and race["White"]["n"] == 1 and race["Black"]["n"] == 1
    assert sum(g["n"] for g in r["groups"]["intersectional"].values()) == 1  # only male-Asian is fully known
    assert r["unknown"] == {"intersectional": 3, "gender": 2, "race": 1}
    counted = {w["attribute"]: w["rows"] for w in r["warnings"] if w["kind"] == "unknown_attribute"}
    assert counted == {"gender": 2, "race": 1}
