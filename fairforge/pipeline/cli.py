"""`fairforge pipeline run pipelines.yaml --preset tiny|full --out RUN_DIR` and `pipeline check`."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from .runner import run_pipeline

    results = run_pipeline(
        args.config,
        args.out,
        preset=args.preset,
        overrides=args.overrides,
        from_=args.from_stage,
        to=args.to_stage,
        force=args.force,
    )
    ran = sum(r.status == "ran" for r in results)
    print(f"pipeline: {ran} stage(s) ran, {len(results) - ran} skipped; report: {args.out}/report.html")
    return 0


def _check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fairforge.config import load_pipeline_config

    from .preflight import check

    config_path = Path(args.config).resolve()
    cfg = load_pipeline_config(config_path, preset=args.preset, overrides=args.overrides)
    report = check(cfg, config_path.parent)
    print(f"pipeline check: {args.config}, preset {args.preset!r}")
    print(report.render())
    problems = report.problems
    verdict = "ready" if not problems else f"{len(problems)} missing piece(s): " + ", ".join(p.key for p in problems)
    print(f"pipeline check: preset {args.preset!r}: {verdict}")
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="run every stage of pipelines.yaml end to end",
        description="import -> generate -> balance -> release -> train -> predict -> evaluate, skipping stages "
        "whose config and inputs did not change.",
    )
    sub = parser.add_subparsers(dest="pipeline_command", metavar="<run|check>")
    for name, func, text in (
        ("run", _run, "run the stages"),
        ("check", _check, "list what the preset needs (files, Hub weights, GPUs) and what is missing"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", help="pipelines.yaml")
        p.add_argument(
            "--preset", default="tiny", help="a preset of the file: tiny (embedded default), full, full-fast"
        )
        p.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override"
        )
        if name == "run":
            p.add_argument("--out", required=True, help="RUN_DIR: each stage writes under RUN_DIR/<stage>/")
            p.add_argument("--from", dest="from_stage", help="start at this stage")
            p.add_argument("--to", dest="to_stage", help="stop after this stage")
            p.add_argument(
                "--force", action="append", default=[], metavar="STAGE", help="rerun this stage even if up to date"
            )
        p.set_defaults(func=func)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
