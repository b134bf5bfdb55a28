"""`fairforge evaluate --predictions P.parquet [--predictions Q.parquet ...] --out DIR [--threshold T] [--bootstrap N]`.

Other tools call it exactly so. With `--config pipelines.yaml [--preset P] [--set K=V]` the settings
and the taxonomy come from its `evaluate:` section (what the pipeline runs); the flags override it.
Without it, flags default to `EvaluateConfig`. numpy/matplotlib are imported only when the command
runs, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fairforge.config import load_stage_config, validate
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
    parser.add_argument("--config", type=Path, help="pipelines.yaml: its evaluate settings and taxonomy")
    parser.add_argument("--preset", help="a preset of the config file: tiny or full")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    parser.add_argument(
        "--threshold", type=float, help=f"predicted fake when score >= T (default {defaults.threshold})"
    )
    parser.add_argument(
        "--min-group-n",
        type=int,
        metavar="N",
        help=f"groups with fewer rows are named in a warning (default {defaults.min_group_n})",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help=f"stratified bootstrap resamples for the 95%% intervals (default {defaults.bootstrap}; 0 skips them)",
    )
    parser.add_argument("--seed", type=int, help=f"bootstrap seed (default {defaults.seed})")
    parser.add_argument(
        "--intra",
        nargs="+",
        action="extend",
        default=None,
        metavar="SOURCE",
        help="the sources the model was trained on: their test rows are intra-dataset, every other source is "
        "cross (default: the first predictions file's source)",
    )
    parser.add_argument(
        "--dataset",
        metavar="DATA",
        help="a manifest, release folder or Hub dataset id: labels and groups are taken from it by `id` "
        "(the predictions then need only id and score)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG plots")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .run import evaluate_files

    flags = {
        "threshold": args.threshold,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "intra": args.intra,
        "min_group_n": args.min_group_n,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    if args.no_plots:
        given["plots"] = False
    base = load_stage_config(args.config, args.preset, args.overrides).evaluate
    config = validate(EvaluateConfig, {**base.model_dump(), **given}, prefix="evaluate")
    report = evaluate_files(args.predictions, args.out, config, progress=True, dataset=args.dataset)
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
