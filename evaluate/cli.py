"""`fairforge evaluate --predictions P.parquet [--predictions Q.parquet ...] --out DIR [--threshold T] [--bootstrap N]`.

Other tools call it exactly so. Flags default to `EvaluateConfig`; numpy/matplotlib are imported
only when the command runs, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fairforge.config.base import validate
from fairforge.config.evaluate import EvaluateConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = EvaluateConfig()
    parser = subparsers.add_parser(
        "evaluate",
        help="detection and fairness metrics, reports and plots from predictions",
        description=(
            "Per-group AUC/ACC/EER/AP/FPR/TPR/PR and the fairness gaps F_* (intersectional, gender, race; each"
            " defined in the report); intra vs cross dataset by `source`, frame and video level. Writes"
            " DIR/report.json, DIR/report.md, DIR/report.html, DIR/predictions.csv, DIR/metrics.csv and"
            " DIR/plots/*.png, *.svg. Degenerate results are listed as warnings."
        ),
    )
    parser.add_argument(
        "--predictions",
        action="append",
        required=True,
        type=Path,
        metavar="P.parquet",
        help="predictions (label, score, gender, race[, source, age, method, id]); repeat for several datasets",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="predicted fake when score >= T (default %(default)s)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=defaults.bootstrap,
        metavar="N",
        help="stratified bootstrap resamples for the 95%% intervals (default %(default)s; 0 skips them)",
    )
    parser.add_argument(
        "--min-group-n",
        type=int,
        default=defaults.min_group_n,
        metavar="N",
        help="groups with fewer rows are named in a warning (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="bootstrap seed (default %(default)s)")
    parser.add_argument(
        "--intra",
        default=defaults.intra,
        metavar="SOURCE",
        help="the source the model was trained on (default: the first predictions file's source)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG plots")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .run import evaluate_files

    config = validate(
        EvaluateConfig,
        {
            "threshold": args.threshold,
            "bootstrap": args.bootstrap,
            "seed": args.seed,
            "intra": args.intra,
            "min_group_n": args.min_group_n,
            "plots": not args.no_plots,
        },
        prefix="evaluate",
    )
    report = evaluate_files(args.predictions, args.out, config, progress=True)
    overall, fairness = report["overall"], report["fairness"]["intersectional"]
    ci = report.get("ci") or {}

    def show(v: float | None, *path: str) -> str:
        if v is None:
            return "n/a"
        interval: object = ci
        for key in path:
            interval = interval.get(key, {}) if isinstance(interval, dict) else None
        extra = f" [{interval[0]:.4f}, {interval[1]:.4f}]" if isinstance(interval, list) else ""
        return f"{v:.4f}{extra}"

    print(
        f"evaluated {report['n']} predictions: AUC {show(overall['auc'], 'overall', 'auc')},"
        f" ACC {show(overall['acc'], 'overall', 'acc')}, EER {show(overall['eer'])};"
        f" intersectional F_FPR {show(fairness['F_FPR'], 'fairness', 'intersectional', 'F_FPR')},"
        f" F_MEO {show(fairness['F_MEO'], 'fairness', 'intersectional', 'F_MEO')}"
    )
    if report["warnings"]:
        print(f"{len(report['warnings'])} warning(s): see the log above and the report's Summary")
    written = "report.json, report.md, report.html, predictions.csv, metrics.csv"
    print(f"wrote {args.out}/{{{written}}}" + (", plots/" if config.plots else ""))
    return 0
