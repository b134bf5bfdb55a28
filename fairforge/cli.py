"""`fairforge <stage> ...`: one subcommand per stage.

Each stage's CLI lives beside the stage (`fairforge.<stage>.cli`) and exposes
`register(subparsers)`, which adds its parser(s) and sets `func=callable(args) -> int`. Stage CLIs
import torch, diffusers etc. inside their functions, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging, and the libraries' INFO messages (timm, accelerate...)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for module_name in STAGE_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


#: Set for the child processes of a verbose run (the pipeline's stages), so `-v` reaches them too.
VERBOSE_ENV = "FAIRFORGE_VERBOSE"
#: Seconds between progress-bar refreshes when stderr is a file or a pipe: each refresh is a line there.
LOG_REFRESH_SECONDS = "30"


def setup_console(verbose: bool) -> None:
    """fairforge's own INFO lines; the libraries' only from WARNING up, unless verbose.

    Without this, timm's and accelerate's INFO lines and matplotlib's font-cache notice bury the
    stage's own output. Progress bars (tqdm reads `TQDM_MININTERVAL` when it is imported) refresh
    every few seconds on a terminal-less stderr instead of ten times a second.
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_MININTERVAL", LOG_REFRESH_SECONDS)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("fairforge").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("matplotlib").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_console(args.verbose or os.environ.get(VERBOSE_ENV) == "1")
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
