"""`fairforge generate`: the balanced synthetic face set (a resumable, shardable batch job).

    fairforge generate --config pipelines.yaml --preset tiny --out DIR
    accelerate launch -m fairforge generate --config pipelines.yaml --preset full --out DIR   # N GPUs
    fairforge generate ... --shard $SLURM_ARRAY_TASK_ID/$N --phase pristine                 # SLURM arrays
    fairforge generate ... --top-up deficits.parquet                                        # balance's deficits

torch, diffusers and insightface are imported when the command runs, so `fairforge --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fairforge.config import load_stage_config


def _run(args: argparse.Namespace) -> int:
    from fairforge.paths import claim_output

    from .job import JobOptions, parse_shard, run_generate

    config = load_stage_config(args.config, args.preset, args.overrides)
    claim_output(args.out, "generate")
    options = JobOptions(
        count_per_cell=args.count_per_cell,
        cells=args.cells,
        top_up=args.top_up,
        shard=parse_shard(args.shard),
        phase=args.phase,
        retry_failed=args.retry_failed,
        progress=not args.no_progress,
        splits=config.balance.split.fractions,
        keep_existing=config.balance.split.keep_existing,
    )
    summary = run_generate(
        config.generate, args.out, seed=config.seed, taxonomy=config.taxonomy.build(), options=options
    )
    if summary is not None:
        print(json.dumps({"out": str(args.out), **summary["total"], "failure_reasons": summary["failure_reasons"]}))
    elif options.shard[1] > 1:
        index, count = options.shard
        print(json.dumps({"out": str(args.out), "shard": f"{index}/{count}", "phase": args.phase, "merged": False}))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="make the balanced synthetic set: diffusion faces, face swaps, self-blended fakes",
        description=(
            "Plan one row per image (cell x k x method), then make diffusion faces, inswapper swaps and "
            "self-blended images, aligned and cropped alike, into DIR/images with DIR/manifest.parquet. "
            "Resumable (rerun the same command) and shardable (accelerate launch, or --shard i/N)."
        ),
    )
    parser.add_argument("--config", type=Path, help="pipelines.yaml (default: the built-in defaults, tiny models)")
    parser.add_argument("--preset", help="a preset of the config file: tiny or full")
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumes what is there)")
    parser.add_argument(
        "--count-per-cell", type=int, help="images per cell and method (default: generate.count_per_cell)"
    )
    parser.add_argument("--cells", nargs="+", metavar="CELL", help="only these cells: gender-race-age or gender-race")
    parser.add_argument("--top-up", type=Path, metavar="DEFICITS", help="make exactly the balance stage's deficits")
    parser.add_argument("--shard", metavar="I/N", help="this task's share of the plan (SLURM array index / count)")
    parser.add_argument(
        "--phase", choices=("all", "pristine", "fakes"), default="all", help="with --shard: pristine on all, then fakes"
    )
    parser.add_argument("--retry-failed", action="store_true", help="try again rows recorded under DIR/failed")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
