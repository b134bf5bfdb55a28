"""`fairforge train ...`: training in this process, and `fairforge train predict`.

`fairforge train --config C` runs `train/run.py`'s `main` in-process (one process). For several
processes or GPUs use Accelerate's launcher on the same script:
`accelerate launch train/run.py --config C` (on a CPU-only machine see run.py's docstring).
"""

from __future__ import annotations

import argparse


def add_train_arguments(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    """The training arguments, declared once for `fairforge train` and `accelerate launch train/run.py`.

    This module imports no torch, so `fairforge --help` stays fast; run.py imports it from here.
    """
    parser.add_argument(
        "--config",
        required=config_required,
        help="a YAML file (train/configs/*.yaml), or a shipped name: ddfg, erm, tiny",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--resume", default=None, help="`latest` or a checkpoint folder (checkpoints/step_N)")


def _train(args: argparse.Namespace) -> int:
    from fairforge.errors import ConfigError

    from .run import load_config, train

    if not args.config:
        raise ConfigError("fairforge train: --config is required (a YAML file or ddfg / erm / tiny)")
    train(load_config(args.config, args.set), resume=args.resume)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .predict import predict_manifest

    out = predict_manifest(
        args.checkpoint,
        args.manifest,
        args.out,
        split=args.split,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        score=args.score,
    )
    print(f"wrote {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector (train/configs/*.yaml); `train predict` scores a manifest",
        description="Train a detector in this process. Many processes/GPUs: accelerate launch train/run.py --config C",
    )
    add_train_arguments(parser, config_required=False)  # `train predict` needs no --config
    parser.set_defaults(func=_train)
    sub = parser.add_subparsers(dest="train_command", metavar="<subcommand>")
    predict = sub.add_parser("predict", help="write P(fake) for every row of a manifest (evaluate's input)")
    predict.add_argument("--checkpoint", required=True, help="an export folder (best/, final/) or a run folder")
    predict.add_argument("--manifest", required=True, action="append", help="manifest file or folder (repeatable)")
    predict.add_argument("--out", required=True, help="predictions Parquet to write")
    predict.add_argument("--split", default=None, help="score only rows of this split (default: all rows)")
    predict.add_argument("--batch-size", type=int, default=None)
    predict.add_argument("--num-workers", type=int, default=None)
    predict.add_argument(
        "--score",
        choices=["softmax", "reference"],
        default="softmax",
        help="softmax: P(fake) as validation and the papers define it (default); reference: the score the "
        "method's authors' test script reports, to compare with their tables (PG-FDD: sigmoid of the fake logit)",
    )
    predict.set_defaults(func=_predict)
