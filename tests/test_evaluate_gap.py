"""The fairness generalization gap (cross minus intra) and its interval from independent per-source resamples."""

from __future__ import annotations

import numpy as np
import pytest

from fairforge.evaluate import check_predictions, cross_dataset
from fairforge.evaluate.bootstrap import bootstrap_stats
from fairforge.evaluate.report import basic_interval, table_samples
from fairforge.taxonomy import DEFAULT_TAXONOMY


def predictions(shifts: dict[str, float], n: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed)
    sources = np.repeat(list(shifts), n)
    y = rng.integers(0, 2, sources.size)
    shift = np.array([shifts[s] for s in sources])
    s = np.clip(rng.normal(0.5 + shift * (2 * y - 1), 0.2), 0, 1)
    g = rng.choice(DEFAULT_TAXONOMY.genders, sources.size)
    r = rng.choice(DEFAULT_TAXONOMY.races, sources.size)
    return check_predictions(y, s, g, r, DEFAULT_TAXONOMY, sources=sources)


def test_gap_is_cross_minus_intra_with_the_basic_interval_of_paired_independent_resamples():
    preds = predictions({"ffpp": 0.3, "celebdf": 0.1, "dfdc": 0.15})
    result = cross_dataset(preds, "ffpp", bootstrap=300, seed=4)
    table, gap, ci = result["table"], result["gap"], result["ci"]
    for source in ("celebdf", "dfdc"):
        for metric in ("auc", "F_FPR", "F_AUC", "F_EO"):
            assert gap["per_source"][source][metric] == pytest.approx(table[source][metric] - table["ffpp"][metric])
    # rebuild the replicates: source i is resampled with the stream (seed, i)
    replicates = {}
    for i, source in enumerate(preds.source_names):
        part = preds.of_source(source)
        boot = bootstrap_stats(part.labels, part.scores, part.cells, 0.5, 300, seed=(4, i))
        replicates[source] = table_samples(boot.stats)
    for metric in ("auc", "F_FPR", "F_DP"):
        expected = basic_interval(
            replicates["celebdf"][metric] - replicates["ffpp"][metric], gap["per_source"]["celebdf"][metric], 0.95
        )
        assert ci["gap"]["per_source"]["celebdf"][metric] == pytest.approx(expected)
        mean = np.mean([replicates[s][metric] for s in ("celebdf", "dfdc")], axis=0) - replicates["ffpp"][metric]
        assert ci["gap"]["mean"][metric] == pytest.approx(basic_interval(mean, gap["mean"][metric], 0.95))
    # a real loss of AUC off the training set: the interval excludes 0
    low, high = ci["gap"]["per_source"]["celebdf"]["auc"]
    assert high < 0 and low <= gap["per_source"]["celebdf"]["auc"] <= high
    # every table value has the interval of its own source's report
    assert ci["table"]["dfdc"]["F_FPR"] == result["sources"]["dfdc"]["ci"]["fairness"]["intersectional"]["F_FPR"]


def test_two_samples_of_one_distribution_have_a_gap_interval_around_zero():
    preds = predictions({"a": 0.2, "b": 0.2}, n=3000, seed=1)
    result = cross_dataset(preds, "a", bootstrap=300, seed=0)
    for metric in ("auc", "acc"):
        low, high = result["ci"]["gap"]["per_source"]["b"][metric]
        assert low < 0 < high, metric


def test_no_bootstrap_no_intervals():
    result = cross_dataset(predictions({"a": 0.2, "b": 0.1}, n=300), "a")
    assert result["ci"] == {} and result["gap"]["per_source"]["b"]["F_FPR"] is not None
