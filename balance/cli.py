"""`fairforge balance` and `fairforge release`."""

from __future__ import annotations

import argparse

from fairforge.config import load_stage_config


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipelines.yaml (default: built-in defaults)")
    parser.add_argument("--preset", help="a preset of the config file: tiny or full (default: none, the top level)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. balance.target_per_cell=50",
    )


def _balance(args: argparse.Namespace) -> int:
    from .loop import generate_topup
    from .run import run_balance

    config = load_stage_config(args.config, args.preset, args.overrides)
    loop = config.balance.loop.model_copy(
        update={
            "until_full": args.until_full or config.balance.loop.until_full,
            "max_rounds": config.balance.loop.max_rounds if args.max_rounds is None else args.max_rounds,
        }
    )
    config = config.model_copy(update={"balance": config.balance.model_copy(update={"loop": loop})})
    topup = generate_topup(args.gen_dir, args.config, args.preset, args.overrides)
    result = run_balance(config, args.gen_dir, args.out, real=args.real, topup=topup, progress=not args.no_progress)
    missing = int(result.deficits["missing"].sum()) if len(result.deficits) else 0
    print(
        f"balance: {len(result.manifest)} rows -> {result.out_dir / 'manifest.parquet'}; report {result.out_dir / 'report.html'}"
    )
    if missing:
        print(f"balance: {missing} images still missing (see {result.out_dir / 'deficits.parquet'})")
    return 0


def _release(args: argparse.Namespace) -> int:
    from .push import push_release
    from .release import run_release

    config = load_stage_config(args.config, args.preset, args.overrides)
    cfg = config.release
    repo_id = args.push or cfg.repo_id
    result = run_release(
        args.in_dir, args.out, cfg, config.taxonomy.build(), repo_id=repo_id, include_real=args.include_real or None
    )
    print(f"release: {result.split_sizes} -> {result.release_dir} (datasets.load_dataset({str(result.release_dir)!r}))")
    if args.push:
        pushed = push_release(
            result.release_dir, args.push, private=args.private or cfg.private, commit_every=cfg.commit_every
        )
        print(
            f"release: pushed to {pushed.repo_id}: {len(pushed.uploaded)} files uploaded, {len(pushed.skipped)} already there"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    balance = subparsers.add_parser(
        "balance",
        help="verify attributes, filter, balance per cell, mix with real data, split",
        description="Verify the generated faces' attributes, filter them, cap every cell at its target, "
        "write the deficits (optionally topping them up with `fairforge generate` until full), mix with "
        "real manifests and split identity-disjointly. Writes DIR/manifest.parquet and DIR/report.html.",
    )
    balance.add_argument("--in", dest="gen_dir", required=True, help="the generate stage's folder (manifest.parquet)")
    balance.add_argument("--out", required=True, help="output folder DIR")
    balance.add_argument("--real", nargs="*", default=[], metavar="MANIFEST", help="real manifests to mix in")
    balance.add_argument(
        "--until-full", action="store_true", help="closed loop: top up deficits with `fairforge generate`"
    )
    balance.add_argument(
        "--max-rounds", type=int, default=None, help="top-up rounds at most (default: balance.loop.max_rounds)"
    )
    balance.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_config_args(balance)
    balance.set_defaults(func=_balance)

    release = subparsers.add_parser(
        "release",
        help="publish the balanced set as a Hugging Face dataset (local folder, optional push)",
        description="Write RELEASE_DIR in the Hub layout (README.md dataset card + data/<split>-*.parquet, "
        "loadable with datasets.load_dataset(RELEASE_DIR)) and a save_to_disk copy in RELEASE_DIR/arrow; "
        "--push uploads it with the token from HF_TOKEN.",
    )
    release.add_argument("--in", dest="in_dir", required=True, help="the balance stage's folder DIR")
    release.add_argument("--out", required=True, help="RELEASE_DIR")
    release.add_argument("--push", metavar="REPO_ID", help="push to this Hub dataset repo")
    release.add_argument("--private", action="store_true", help="create the repo private")
    release.add_argument(
        "--include-real",
        action="store_true",
        help="also put the imported real rows in the release (check their licences first); by default they are "
        "listed by id in references/real.parquet",
    )
    _add_config_args(release)
    release.set_defaults(func=_release)
