"""`fairforge import <format> ...`: one subcommand per input format.

Formats register in `FORMATS` (name -> help, argument builder, runner); the options every format
shares (`--out`, `--skip-bad`, `--link`/`--copy`, `--no-verify-images`) are added once. pandas and
PIL are imported when a command runs, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .common import ImportOptions

    return ImportOptions(skip_bad=args.skip_bad, place=args.place, verify_images=args.verify_images)


def _pgfdd_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", required=True, type=Path, help="the annotation CSV")
    parser.add_argument("--images-root", required=True, type=Path, help="folder img_path is relative to")
    parser.add_argument(
        "--dataset", required=True, help="source name: ffpp, dfdc (8 groups), dfd, celebdf (6 groups), ..."
    )
    parser.add_argument("--split", required=True, choices=("train", "validation", "val", "test"))
    parser.add_argument("--groups", type=int, choices=(6, 8), help="group table size (default: from --dataset)")
    parser.add_argument(
        "--identity", default="video", choices=("video", "file"), help="identity = video folder or file"
    )
    parser.add_argument("--strip-prefix", help="remove this leading folder from img_path (the annotator's machine)")


def _pgfdd_run(args: argparse.Namespace) -> Path:
    from .pgfdd import import_pgfdd

    return import_pgfdd(
        args.csv,
        args.images_root,
        args.out,
        args.dataset,
        args.split,
        groups=args.groups,
        strip_prefix=args.strip_prefix,
        identity=args.identity,
        options=_options(args),
    )


def _deepfakebench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", required=True, type=Path, help="a DeepfakeBench dataset JSON")
    parser.add_argument("--images-root", required=True, type=Path, help="folder the JSON's frame paths resolve against")
    parser.add_argument("--label-map", nargs="+", metavar="NAME=0|1", help="label names -> 0/1 (default: *real* -> 0)")
    parser.add_argument("--compression", default="c23", help="compression level where the JSON has them (default c23)")
    parser.add_argument("--dataset", dest="datasets", nargs="+", help="import only these datasets of the JSON")
    parser.add_argument("--splits", nargs="+", choices=("train", "validation", "val", "test"), help="import only these splits")
    parser.add_argument("--attributes", type=Path, help="CSV: path or video (+dataset) -> gender, race[, age]")
    parser.add_argument("--strip-prefix", help="remove this leading folder from frame paths")


def _deepfakebench_run(args: argparse.Namespace) -> Path:
    from .deepfakebench import import_deepfakebench, parse_label_map

    return import_deepfakebench(
        args.json,
        args.images_root,
        args.out,
        label_map=parse_label_map(args.label_map),
        compression=args.compression,
        datasets=args.datasets,
        splits=args.splits,
        attributes=args.attributes,
        strip_prefix=args.strip_prefix,
        options=_options(args),
    )


def _imagefolder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, type=Path, help="folder with metadata.csv / metadata.jsonl")
    parser.add_argument("--source", help="source where the metadata has none (default: the folder's name)")


def _imagefolder_run(args: argparse.Namespace) -> Path:
    from .imagefolder import import_imagefolder

    return import_imagefolder(args.root, args.out, source=args.source, options=_options(args))


#: format -> (help, add arguments, run returning the manifest written)
FORMATS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Path]]] = {
    "pgfdd": ("PG-FDD / DAW-FDD / AI-Face annotation CSV", _pgfdd_arguments, _pgfdd_run),
    "deepfakebench": ("DeepfakeBench dataset JSON", _deepfakebench_arguments, _deepfakebench_run),
    "imagefolder": (
        "Hugging Face imagefolder (metadata.csv / metadata.jsonl)",
        _imagefolder_arguments,
        _imagefolder_run,
    ),
}


def _run(args: argparse.Namespace) -> int:
    manifest = FORMATS[args.format][2](args)
    print(manifest)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import", help="turn an existing dataset into a manifest")
    formats = parser.add_subparsers(dest="format", metavar="<format>", required=True)
    for name, (help_text, add_arguments, _) in FORMATS.items():
        sub = formats.add_parser(name, help=help_text, description=f"Import a {help_text} into OUT/manifest.parquet.")
        add_arguments(sub)
        sub.add_argument("--out", required=True, type=Path, help="folder for manifest.parquet (and rejected.parquet)")
        sub.add_argument(
            "--skip-bad", action="store_true", help="write bad rows to OUT/rejected.parquet, import the rest"
        )
        place = sub.add_mutually_exclusive_group()
        place.add_argument(
            "--link", dest="place", action="store_const", const="link", help="symlink images outside OUT (default)"
        )
        place.add_argument("--copy", dest="place", action="store_const", const="copy", help="copy images outside OUT")
        sub.add_argument(
            "--no-verify-images",
            dest="verify_images",
            action="store_false",
            help="skip reading headers and hashing (existence is still checked)",
        )
        sub.set_defaults(func=_run, place="link")
