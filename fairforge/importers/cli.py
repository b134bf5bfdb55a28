"""`fairforge import <format> ...`: one subcommand per input format.

Formats register in the `FORMATS` registry (name -> help, argument builder, runner); the options
every format shares (`--out`, `--skip-bad`, `--link`/`--copy`, `--no-verify-images`, and
`--config/--preset/--set` for the taxonomy the labels are mapped onto) are added once. pandas and
PIL are imported when a command runs, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fairforge.registry import Registry

if TYPE_CHECKING:
    from .common import ImportOptions


@dataclass(frozen=True)
class ImportFormat:
    """One input format: its help line, its own arguments, and the run that returns the manifest written."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Path]


#: format name -> ImportFormat; `datasets[].format` of pipelines.yaml takes its choices from here.
FORMATS: Registry[ImportFormat] = Registry("import format")


def _options(args: argparse.Namespace) -> ImportOptions:
    from fairforge.config import load_stage_config

    from .common import ImportOptions

    taxonomy = load_stage_config(args.config, args.preset, args.overrides).taxonomy.build()
    return ImportOptions(
        skip_bad=args.skip_bad,
        place=args.place,
        verify_images=args.verify_images,
        follow_links=args.follow_links,
        taxonomy=taxonomy,
    )


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


FORMATS.register("pgfdd", ImportFormat("PG-FDD / DAW-FDD / AI-Face annotation CSV", _pgfdd_arguments, _pgfdd_run))
FORMATS.register(
    "deepfakebench", ImportFormat("DeepfakeBench dataset JSON", _deepfakebench_arguments, _deepfakebench_run)
)
FORMATS.register(
    "imagefolder",
    ImportFormat("Hugging Face imagefolder (metadata.csv / metadata.jsonl)", _imagefolder_arguments, _imagefolder_run),
)


def _run(args: argparse.Namespace) -> int:
    manifest = FORMATS.get(args.format, key="import").run(args)
    print(manifest)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("import", help="turn an existing dataset into a manifest")
    formats = parser.add_subparsers(dest="format", metavar="<format>", required=True)
    for name, fmt in FORMATS.items():
        sub = formats.add_parser(name, help=fmt.help, description=f"Import a {fmt.help} into OUT/manifest.parquet.")
        fmt.add_arguments(sub)
        sub.add_argument("--out", required=True, type=Path, help="folder for manifest.parquet (and rejected.parquet)")
        sub.add_argument("--config", type=Path, help="pipelines.yaml: the taxonomy labels are mapped onto")
        sub.add_argument("--preset", help="a preset of the config file: tiny or full")
        sub.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override"
        )
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
        sub.add_argument(
            "--follow-links",
            action="store_true",
            help="accept images that are symlinks to files outside the images root (default: bad rows)",
        )
        sub.set_defaults(func=_run, place="link")
