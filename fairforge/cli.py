"""`fairforge <stage> ...`: one subcommand per stage.

Each stage's CLI lives beside the stage (`fairforge.<stage>.cli`) and exposes
`register(subparsers)`, which adds its parser(s) and sets `func=callable(args) -> int`. Stage CLIs
import torch, diffusers etc. inside their functions, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .errors import FairforgeError

#: Modules whose `register(subparsers)` adds subcommands, in the order `--help` lists them.
STAGE_CLIS: tuple[str, ...] = (
    "fairforge.importers.cli",
    "fairforge.generate.cli",
    "fairforge.balance.cli",
    "fairforge.balance.audit",
    "fairforge.train.cli",
    "fairforge.evaluate.cli",
    "fairforge.pipeline.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairforge",
        description="Fair deepfake detection: generate balanced synthetic faces, balance, train, evaluate.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for module_name in STAGE_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FairforgeError as exc:
        print(f"fairforge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
