"""Benchmark: fairforge.evaluate vs fairlearn's MetricFrame on the same metric set, same run.

    python bench/evaluate.py [--n 200000] [--resamples 1000] [--boot-n 5000] [--boot-resamples 20]

The set, as `fairness_report(bootstrap=0)` computes it: per group of the 8 intersectional groups,
the 2 genders, the 4 races and overall: AUC, ACC, EER, AP, FPR, TPR, PR at threshold 0.5, the
threshold metrics again at the overall EER threshold, and the fairness gaps. fairlearn does it with
one MetricFrame per grouping (sklearn metric functions per group, `.difference()` for the gaps).
Three ratios, each of two measured times:
1. the set without intervals, both sides, at `--n` rows;
2. fairforge with `--resamples` bootstrap intervals (what `fairforge evaluate` runs by default)
   against fairlearn's set without any, at `--n` rows: the target (>= 20x) holds with intervals on;
3. both with intervals from the same number of resamples (fairlearn's `n_boot`), at `--boot-n`
   rows and `--boot-resamples` resamples, because fairlearn re-runs every metric per resample.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn import metrics as skm

from fairforge.evaluate import fairness_report
from fairforge.taxonomy import DEFAULT_TAXONOMY

R = TypeVar("R")


def make_predictions(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int8)
    genders = np.asarray(DEFAULT_TAXONOMY.genders)[rng.integers(0, 2, n)]
    races = np.asarray(DEFAULT_TAXONOMY.races)[rng.integers(0, 4, n)]
    scores = np.clip(rng.normal(0.5 + 0.2 * (2 * labels - 1), 0.25), 0, 1)
    return {"labels": labels, "scores": scores, "genders": genders, "races": races}


def eer(y_true: np.ndarray, y_score: np.ndarray) -> float:
    fpr, tpr, _ = skm.roc_curve(y_true, y_score)
    return float(fpr[np.nanargmin(np.absolute((1 - tpr) - fpr))])


def eer_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    fpr, tpr, thresholds = skm.roc_curve(y_true, y_score)
    return float(thresholds[np.nanargmin(np.absolute((1 - tpr) - fpr))])


def at(
    metric: Callable[[np.ndarray, np.ndarray], float], threshold: float
) -> Callable[[np.ndarray, np.ndarray], float]:
    """A MetricFrame metric of (labels, scores) thresholding the scores first."""
    return lambda y_true, y_score: metric(y_true, (y_score >= threshold).astype(int))


def fairlearn_set(data: dict[str, np.ndarray], n_boot: int | None = None) -> dict[str, object]:
    y, s = data["labels"], data["scores"]
    threshold_metrics = {
        "acc": skm.accuracy_score,
        "fpr": false_positive_rate,
        "tpr": true_positive_rate,
        "pr": selection_rate,
    }
    ranking = {"auc": skm.roc_auc_score, "ap": skm.average_precision_score, "eer": eer}
    out = {}
    t_eer = eer_threshold(y, s)
    groupings = {
        "intersectional": {"gender": data["genders"], "race": data["races"]},
        "gender": data["genders"],
        "race": data["races"],
    }
    for name, sensitive in groupings.items():
        metrics = {**ranking, **{k: at(f, 0.5) for k, f in threshold_metrics.items()}}
        boot = {"n_boot": n_boot, "ci_quantiles": [0.025, 0.975], "random_state": 0} if n_boot else {}
        frame = MetricFrame(metrics=metrics, y_true=y, y_pred=s, sensitive_features=sensitive, **boot)
        at_eer = MetricFrame(
            metrics={k: at(f, t_eer) for k, f in threshold_metrics.items()},
            y_true=y,
            y_pred=s,
            sensitive_features=sensitive,
        )
        out[name] = (frame.by_group, frame.overall, frame.difference(), at_eer.by_group, at_eer.difference())
    return out


def timed(fn: Callable[..., R], *args: Any, **kwargs: Any) -> tuple[R, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="predictions (default 200k: a couple of minutes)")
    parser.add_argument("--resamples", type=int, default=1000, help="fairforge's bootstrap resamples (default 1000)")
    parser.add_argument("--boot-n", type=int, default=5000, help="predictions for the both-bootstrapped ratio")
    parser.add_argument("--boot-resamples", type=int, default=20, help="resamples on both sides for that ratio")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data = make_predictions(args.n)
    fairness_report(**{k: v[:1000] for k, v in data.items()}, bootstrap=10)  # warm-up (imports, first calls)
    arrays = (data["labels"], data["scores"], data["genders"], data["races"])

    ours, t_ours = timed(fairness_report, *arrays)
    theirs, t_theirs = timed(fairlearn_set, data)
    # same numbers: fairlearn's intersectional FPR gap
    gap = 100 * theirs["intersectional"][2]["fpr"]
    assert abs(gap - ours["fairness"]["intersectional"]["F_FPR"]) < 1e-9, (gap, ours["fairness"]["intersectional"])
    print(f"predictions: {args.n:,}; groups: 8 intersectional + 2 gender + 4 race + overall")
    print(f"fairforge.evaluate.fairness_report:        {t_ours:8.3f} s")
    print(f"fairlearn MetricFrame (same set):          {t_theirs:8.3f} s")
    print(f"1. ratio, no intervals:                    {t_theirs / t_ours:8.1f}x  (target >= 20x)")

    report, t_boot = timed(fairness_report, *arrays, bootstrap=args.resamples)
    print(f"fairness_report with {args.resamples} resamples:       {t_boot:8.3f} s")
    print(f"2. ratio, fairforge with intervals on:     {t_theirs / t_boot:8.1f}x  (target >= 20x)")
    lo, hi = report["ci"]["fairness"]["intersectional"]["F_FPR"]
    print(f"   e.g. intersectional F_FPR {report['fairness']['intersectional']['F_FPR']:.3f} [{lo:.3f}, {hi:.3f}]")

    small = make_predictions(args.boot_n, seed=1)
    small_arrays = (small["labels"], small["scores"], small["genders"], small["races"])
    _, t_small = timed(fairness_report, *small_arrays, bootstrap=args.boot_resamples)
    _, t_small_fl = timed(fairlearn_set, small, n_boot=args.boot_resamples)
    print(f"at {args.boot_n:,} predictions, {args.boot_resamples} resamples on both sides:")
    print(f"   fairforge {t_small:.3f} s, fairlearn MetricFrame(n_boot) {t_small_fl:.3f} s")
    print(f"3. ratio, both with intervals:             {t_small_fl / t_small:8.1f}x")


if __name__ == "__main__":
    main()
