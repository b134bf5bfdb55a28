"""Coverage: the nominal 95% intervals of F_FPR and F_AUC hold the true value in >= 90% of 200 trials.

Synthetic groups with known rates: in group g real scores are N(0, 1) shifted so that exactly a
fraction FPR_g lies above the threshold, fake scores are shifted by d_g more, so AUC_g =
Phi(d_g / sqrt 2). The true F_FPR and F_AUC are max-min of those. Two groups tie at the top of
AUC, the case where the percentile bootstrap of a max-min gap is worst (its coverage is printed
beside ours when the test runs with -s, as a reminder of why the method is what it is).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from fairforge.evaluate.bootstrap import bootstrap_stats
from fairforge.evaluate.groups import make_cells
from fairforge.evaluate.metrics import FAIRNESS_METRICS
from fairforge.evaluate.report import fairness_intervals, threshold_section
from fairforge.evaluate.stats import group_stats
from fairforge.taxonomy import DEFAULT_TAXONOMY

FPR = np.array([0.10, 0.12, 0.15, 0.20, 0.11, 0.14, 0.18, 0.25])
SHIFT = np.array([1.0, 0.9, 0.8, 0.7, 1.0, 0.85, 0.75, 0.6])
TRUTH = {"F_FPR": 100 * np.ptp(FPR), "F_AUC": 100 * np.ptp(norm.cdf(SHIFT / np.sqrt(2)))}
PER_GROUP = 150
TRIALS = 200
RESAMPLES = 200
BINS = 16  # the threshold counts are exact at any binning; AUC pairs within a bin enter at their mean


def sample(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    group = np.repeat(np.arange(8), PER_GROUP)
    y = rng.integers(0, 2, group.size)
    z = rng.normal(size=group.size) + SHIFT[group] * y - norm.ppf(1 - FPR[group])
    genders = np.asarray(DEFAULT_TAXONOMY.genders)[group // 4]
    races = np.asarray(DEFAULT_TAXONOMY.races)[group % 4]
    return y, norm.cdf(z), genders, races  # score >= 0.5 exactly when z >= 0


def test_intervals_cover_the_true_gaps():
    rng = np.random.default_rng(2026)
    covered = {name: 0 for name in TRUTH}
    percentile = {name: 0 for name in TRUTH}
    for trial in range(TRIALS):
        y, s, g, r = sample(rng)
        cells = make_cells(g, r, DEFAULT_TAXONOMY)
        points = group_stats(y, s, cells, 0.5)
        section = threshold_section(points)
        boot = bootstrap_stats(y, s, cells, 0.5, RESAMPLES, seed=trial, max_bins=BINS).stats
        intervals = fairness_intervals(boot, points, section, 0.95, ["intersectional"])["intersectional"]
        for name, truth in TRUTH.items():
            low, high = intervals[name]
            assert low <= section["fairness"]["intersectional"][name] <= high
            covered[name] += low <= truth <= high
            replicates = FAIRNESS_METRICS[name].compute(boot["intersectional"], boot["overall"])
            q = np.percentile(replicates, [2.5, 97.5])  # the percentile interval, for contrast
            percentile[name] += q[0] <= truth <= q[1]
    rates = {name: count / TRIALS for name, count in covered.items()}
    naive = {name: count / TRIALS for name, count in percentile.items()}
    print(f"coverage over {TRIALS} trials: {rates}; percentile bootstrap: {naive}")
    assert rates["F_FPR"] >= 0.90 and rates["F_AUC"] >= 0.90
    assert naive["F_AUC"] < 0.9  # the naive method fails here: the test tells the two apart
