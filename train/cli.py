"""CLI of this stage (not built yet: its issue fills it)."""

from __future__ import annotations

import argparse


def _not_built(args: argparse.Namespace) -> int:
    print(f"fairforge {args.command}: not built yet")
    return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("train", help="train stage (not built yet)").set_defaults(func=_not_built)
