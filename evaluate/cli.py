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
            "Per-group AUC/ACC/EER/AP/FPR/TPR/PR and the fairness metrics F_FPR, F_OAE, F_DP, F_MEO, F_AUC,"
            " F_EFPR, F_EO (intersectional, gender, race); intra vs cross dataset by `source`. Writes"
            " DIR/report.json, DIR/report.md, DIR/report.html and DIR/plots/*.png."
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
        "--bootstrap",
        type=int,
        metavar="N",
        help=f"bootstrap resamples for 95%% intervals (default {defaults.bootstrap})",
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
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .run import evaluate_files

    flags = {"threshold": args.threshold, "bootstrap": args.bootstrap, "seed": args.seed, "intra": args.intra}
    given = {key: value for key, value in flags.items() if value is not None}
    if args.no_plots:
        given["plots"] = False
    base = load_stage_config(args.config, args.preset, args.overrides).evaluate
    config = validate(EvaluateConfig, {**base.model_dump(), **given}, prefix="evaluate")
    report = evaluate_files(args.predictions, args.out, config, progress=True, dataset=args.dataset)
    overall, fairness = report["overall"], report["fairness"]["intersectional"]

    def show(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    print(
        f"evaluated {report['n']} predictions: AUC {show(overall['auc'])}, ACC {show(overall['acc'])},"
        f" EER {show(overall['eer'])}; intersectional F_FPR {show(fairness['F_FPR'])}, F_MEO {show(fairness['F_MEO'])}"
    )
    print(f"wrote {args.out}/report.json, report.md, report.html" + (", plots/" if config.plots else ""))
    return 0
