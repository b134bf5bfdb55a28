"""The binned stratified bootstrap: exact resample statistics, determinism, agreement with a plain bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fairforge.evaluate import bootstrap_stats, fairness_report
from fairforge.evaluate.bootstrap import draw_counts, plan_bins, resample_stats
from fairforge.evaluate.groups import make_cells
from fairforge.evaluate.stats import group_stats
from fairforge.taxonomy import DEFAULT_TAXONOMY


def _data(n: int, seed: int, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.5 + 0.15 * (2 * y - 1), 0.2), 0, 1)
    if decimals is not None:
        s = np.round(s, decimals)
    genders = np.array(["male", "female", "unknown"])[rng.integers(0, 3, n)]
    races = np.array(["Asian", "White", "Black", "Others"])[rng.integers(0, 4, n)]
    return y, s, make_cells(genders, races, DEFAULT_TAXONOMY)


def test_resample_statistics_equal_sklearn_with_weights():
    """With few distinct scores every bin is one score: each resample's AUC and counts are exact."""
    y, s, cells = _data(600, 0, decimals=1)
    plan = plan_bins(y, s, cells, 0.5, max_bins=64)
    assert plan.exact
    rng = np.random.default_rng(3)
    w_pos = np.stack([draw_counts(rng, plan.n_pos[:, j], 5) for j in range(plan.cells.size)], axis=-1)
    w_neg = np.stack([draw_counts(rng, plan.n_neg[:, j], 5) for j in range(plan.cells.size)], axis=-1)
    stats = resample_stats(plan, cells, w_pos.astype(float), w_neg.astype(float))
    # Rebuild each resample as weighted rows: one row per (bin, cell, label) at the bin's score.
    bin_score = {}
    edges = np.unique(s)
    for k in range(plan.n_pos.shape[0]):
        inside = edges[np.searchsorted(np.union1d(edges[1:], [0.5]), edges, side="right") == k]
        if inside.size:
            bin_score[k] = inside[0]
    for attribute, gs in stats.items():
        member = cells.groupings[attribute].member[plan.cells]
        for x in range(5):
            for g in range(len(gs.names)):
                rows_y, rows_s, rows_w = [], [], []
                for k, score in bin_score.items():
                    for j in np.flatnonzero(member[:, g]):
                        for label, w in ((1, w_pos[x, k, j]), (0, w_neg[x, k, j])):
                            if w:
                                rows_y.append(label)
                                rows_s.append(score)
                                rows_w.append(w)
                rows_y, rows_s, rows_w = np.array(rows_y), np.array(rows_s), np.array(rows_w)
                assert gs.auc[x, g] == pytest.approx(roc_auc_score(rows_y, rows_s, sample_weight=rows_w), abs=1e-12)
                fake_above = rows_w[(rows_y == 1) & (rows_s >= 0.5)].sum()
                real_above = rows_w[(rows_y == 0) & (rows_s >= 0.5)].sum()
                assert gs.tp[x, g] == fake_above and gs.fp[x, g] == real_above


def test_binned_plan_reproduces_the_point_estimate():
    """Drawing every row exactly once (the original sample) gives back the exact AUC, even with coarse bins."""
    y, s, cells = _data(3000, 1)
    plan = plan_bins(y, s, cells, 0.5, max_bins=16)
    assert not plan.exact
    stats = resample_stats(plan, cells, plan.n_pos[None].astype(float), plan.n_neg[None].astype(float))
    point = group_stats(y, s, cells, 0.5)
    for attribute in stats:
        np.testing.assert_allclose(stats[attribute].auc[0], point[attribute].auc, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(stats[attribute].tp[0], point[attribute].tp)
        np.testing.assert_array_equal(stats[attribute].fp[0], point[attribute].fp)


def test_bootstrap_is_deterministic_and_seeded():
    y, s, cells = _data(2000, 2)
    a = fairness_report(y, s, *_attrs(cells), bootstrap=100, seed=5)
    b = fairness_report(y, s, *_attrs(cells), bootstrap=100, seed=5)
    c = fairness_report(y, s, *_attrs(cells), bootstrap=100, seed=6)
    assert a["ci"] == b["ci"]
    assert a["ci"]["fairness"] != c["ci"]["fairness"]
    ci = a["ci"]
    assert ci["resamples"] == 100 and ci["level"] == 0.95
    for attribute in ("intersectional", "gender", "race"):
        for name, interval in ci["fairness"][attribute].items():
            assert interval[0] <= interval[1], name
    lo, hi = ci["overall"]["auc"]
    assert lo < a["overall"]["auc"] < hi


def _attrs(cells):
    names = cells.cell_names
    return [names[c][0] for c in cells.code], [names[c][1] for c in cells.code]


def test_binned_bootstrap_agrees_with_a_plain_stratified_bootstrap():
    y, s, cells = _data(2000, 4)
    boot = bootstrap_stats(y, s, cells, 0.5, 300, seed=0, max_bins=32).stats["overall"].auc[:, 0]
    rng = np.random.default_rng(1)
    strata = [np.flatnonzero((cells.code == c) & (y == label)) for c in np.unique(cells.code) for label in (0, 1)]
    plain = []
    for _ in range(300):
        rows = np.concatenate([rng.choice(idx, idx.size) for idx in strata if idx.size])
        plain.append(roc_auc_score(y[rows], s[rows]))
    assert boot.std() == pytest.approx(np.std(plain), rel=0.2)
    assert boot.mean() == pytest.approx(np.mean(plain), abs=0.004)


def test_null_groups_stay_null_in_every_resample():
    y = np.array([1, 1, 1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.4, 0.6, 0.5])
    genders = ["female"] * 3 + ["male"] * 5
    races = ["Black"] * 3 + ["White"] * 5
    r = fairness_report(y, s, genders, races, bootstrap=50)
    assert r["ci"]["groups"]["intersectional"]["female-Black"]["fpr"] is None
    assert r["ci"]["groups"]["intersectional"]["female-Black"]["tpr"] is not None
    assert r["ci"]["fairness"]["intersectional"]["F_FPR"] is None  # only male-White has real rows
