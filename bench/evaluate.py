"""Benchmark: fairforge.evaluate vs fairlearn's MetricFrame on the same metric set, same run.

    python bench/evaluate.py [--n 1000000] [--resamples 1000]

The set, as `fairness_report(bootstrap=0)` computes it: per group of the 8 intersectional groups,
the 2 genders, the 4 races and overall: AUC, ACC, EER, AP, FPR, TPR, PR at threshold 0.5, the
threshold metrics again at the overall EER threshold, and the fairness gaps. fairlearn does it with
one MetricFrame per grouping (sklearn metric functions per group, `.difference()` for the gaps).
Prints both times and the ratio, then the time of `--resamples` bootstrap resamples.
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


def fairlearn_set(data: dict[str, np.ndarray]) -> dict[str, object]:
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
        frame = MetricFrame(metrics=metrics, y_true=y, y_pred=s, sensitive_features=sensitive)
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
    parser.add_argument("--n", type=int, default=1_000_000, help="predictions (default 1M)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples to time (default 1000)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data = make_predictions(args.n)
    fairness_report(**{k: v[:1000] for k, v in data.items()})  # warm-up (imports, first calls)

    ours, t_ours = timed(fairness_report, data["labels"], data["scores"], data["genders"], data["races"])
    theirs, t_theirs = timed(fairlearn_set, data)
    # same numbers: fairlearn's intersectional FPR gap and AUC of the first group
    gap = 100 * theirs["intersectional"][2]["fpr"]
    assert abs(gap - ours["fairness"]["intersectional"]["F_FPR"]) < 1e-9, (gap, ours["fairness"]["intersectional"])
    print(f"predictions: {args.n:,}; groups: 8 intersectional + 2 gender + 4 race + overall")
    print(f"fairforge.evaluate.fairness_report: {t_ours:8.3f} s")
    print(f"fairlearn MetricFrame (same set):   {t_theirs:8.3f} s")
    print(f"ratio (fairlearn / fairforge):      {t_theirs / t_ours:8.1f}x  (target >= 20x)")

    report, t_boot = timed(
        fairness_report, data["labels"], data["scores"], data["genders"], data["races"], bootstrap=args.resamples
    )
    print(
        f"fairness_report with {args.resamples} bootstrap resamples: {t_boot:.3f} s total,"
        f" {t_boot - t_ours:.3f} s for the resamples"
    )
    lo, hi = report["ci"]["fairness"]["intersectional"]["F_FPR"]
    print(f"  e.g. intersectional F_FPR {report['fairness']['intersectional']['F_FPR']:.3f} [{lo:.3f}, {hi:.3f}]")


if __name__ == "__main__":
    main()
