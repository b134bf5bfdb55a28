"""The pipeline's stages: for each, the exact commands a user would type, its inputs and outputs.

import -> generate -> balance (closed loop) -> release -> train -> predict -> evaluate.
Every command is a stage CLI (`python -m fairforge <stage> ...`, or `accelerate launch` for
training), so what the pipeline runs is what the README documents.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from fairforge.manifest import MANIFEST_NAME

from .runner import StageContext, StagePlan, register_stage

SYNTH_SOURCE = "fairforge-synth"


def _imported(ctx: StageContext, role: str) -> list[tuple[str, Path]]:
    """(name, manifest) of the configured real datasets usable for `role` (train or test)."""
    return [
        (d.name, ctx.stage_dir("import") / d.name / MANIFEST_NAME) for d in ctx.cfg.datasets if d.role in (role, "both")
    ]


@register_stage("import", "turn the configured real datasets into manifests")
def plan_import(ctx: StageContext) -> StagePlan:
    if not ctx.cfg.datasets:
        return StagePlan([], [], [], {}, skip_reason="no real datasets configured (`datasets:` is empty)")
    commands, inputs, outputs = [], [], []
    for d in ctx.cfg.datasets:
        out = ctx.stage_dir("import") / d.name
        if d.format == "pgfdd":
            args = ["pgfdd", "--csv", d.csv, "--images-root", d.images_root, "--dataset", d.name]
            args += ["--split", d.split or "test"]
            inputs.append(Path(str(d.csv)))
        elif d.format == "deepfakebench":
            args = ["deepfakebench", "--json", d.json_file, "--images-root", d.images_root]
            inputs.append(Path(str(d.json_file)))
        else:
            args = ["imagefolder", "--root", d.images_root, "--source", d.name]
            inputs.append(Path(d.images_root))
        commands.append(ctx.fairforge("import", *args, "--out", out))
        outputs.append(out / MANIFEST_NAME)
    return StagePlan(commands, inputs, outputs, {"datasets": [d.model_dump(mode="json") for d in ctx.cfg.datasets]})


@register_stage("generate", "diffusion faces, face swaps and self-blended fakes over the prompt grid")
def plan_generate(ctx: StageContext) -> StagePlan:
    out = ctx.stage_dir("generate")
    return StagePlan(
        [ctx.fairforge("generate", *ctx.config_args(), "--out", out)],
        [],
        [out / MANIFEST_NAME],
        {
            "seed": ctx.cfg.seed,
            "taxonomy": ctx.cfg.taxonomy.model_dump(),
            "generate": ctx.cfg.generate.model_dump(mode="json"),
        },
    )


@register_stage("balance", "verify attributes, filter, balance per cell (closed loop), mix with real data, split")
def plan_balance(ctx: StageContext) -> StagePlan:
    gen = ctx.stage_dir("generate")
    out = ctx.stage_dir("balance")
    real = [m for _, m in _imported(ctx, "train")]
    command = ctx.fairforge("balance", *ctx.config_args(), "--in", gen, "--out", out)
    if real:
        command += ["--real", *map(str, real)]
    return StagePlan(
        [command],
        [gen / MANIFEST_NAME, *real],
        [out / MANIFEST_NAME],
        {
            "seed": ctx.cfg.seed,
            "taxonomy": ctx.cfg.taxonomy.model_dump(),
            "balance": ctx.cfg.balance.model_dump(mode="json"),
            "generate": ctx.cfg.generate.model_dump(mode="json"),  # the closed loop tops up through generate
        },
    )


@register_stage("release", "the balanced set as a Hugging Face dataset with a dataset card (local)")
def plan_release(ctx: StageContext) -> StagePlan:
    src = ctx.stage_dir("balance")
    out = ctx.stage_dir("release")
    return StagePlan(
        [ctx.fairforge("release", *ctx.config_args(), "--in", src, "--out", out)],
        [src / MANIFEST_NAME],
        [out / "README.md"],
        {"release": ctx.cfg.release.model_dump(mode="json")},
    )


def _train_config_file(ctx: StageContext) -> Path:
    """The train section with the balanced set as data, written where the run's trainer reads it."""
    cfg = ctx.cfg.train.model_dump(mode="json")
    cfg["data"]["train"] = [str(ctx.stage_dir("balance") / MANIFEST_NAME)]
    cfg["data"]["val"] = []
    cfg["output_dir"] = str(ctx.stage_dir("train") / "run")
    path = ctx.stage_dir("train") / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


@register_stage("train", "the multi-task detector with the configured method (accelerate launch)")
def plan_train(ctx: StageContext) -> StagePlan:
    config_file = _train_config_file(ctx)
    launch = ctx.cfg.launch
    env: dict[str, str] = {}
    if launch.num_processes > 1:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(launch.num_processes)]
        command += ["--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", ctx.cfg.train.mixed_precision]
        if launch.cpu:
            # accelerate's --cpu runs ONE process; --multi_gpu with ACCELERATE_USE_CPU runs N over gloo
            command += ["--multi_gpu"]
            env["ACCELERATE_USE_CPU"] = "1"
        elif launch.multi_gpu:
            command += ["--multi_gpu"]
        command += ["-m", "fairforge.train.run", "--config", str(config_file)]
    else:
        command = ctx.fairforge("train", "--config", config_file)
    out = ctx.stage_dir("train") / "run"
    return StagePlan(
        [command],
        [config_file, ctx.stage_dir("balance") / MANIFEST_NAME],
        [out / "final"],
        {"train": ctx.cfg.train.model_dump(mode="json"), "launch": launch.model_dump()},
        env=env,
    )


def _test_sets(ctx: StageContext) -> list[tuple[str, Path, str | None]]:
    """(name, manifest, split) of every test set: the balanced set's test split and the real test datasets."""
    sets: list[tuple[str, Path, str | None]] = [(SYNTH_SOURCE, ctx.stage_dir("balance") / MANIFEST_NAME, "test")]
    sets += [(name, manifest, None) for name, manifest in _imported(ctx, "test")]
    return sets


@register_stage("predict", "score every test set with the trained detector")
def plan_predict(ctx: StageContext) -> StagePlan:
    checkpoint = ctx.stage_dir("train") / "run" / "final"
    out = ctx.stage_dir("predict")
    commands, outputs = [], []
    for name, manifest, split in _test_sets(ctx):
        command = ctx.fairforge("train", "predict", "--checkpoint", checkpoint, "--manifest", manifest)
        command += ["--out", out / f"{name}.parquet"]
        if split:
            command += ["--split", split]
        commands.append(command)
        outputs.append(out / f"{name}.parquet")
    inputs = [checkpoint, *(m for _, m, _ in _test_sets(ctx))]
    return StagePlan(commands, inputs, outputs, {"sets": [n for n, _, _ in _test_sets(ctx)]})


@register_stage("evaluate", "detection and fairness metrics, intra vs cross dataset, report and plots")
def plan_evaluate(ctx: StageContext) -> StagePlan:
    predictions = [ctx.stage_dir("predict") / f"{name}.parquet" for name, _, _ in _test_sets(ctx)]
    out = ctx.stage_dir("evaluate")
    command = ctx.fairforge("evaluate", "--out", out, "--intra", SYNTH_SOURCE)
    for p in predictions:
        command += ["--predictions", p]
    evaluate = ctx.cfg.evaluate
    command += ["--threshold", str(evaluate.threshold), "--bootstrap", str(evaluate.bootstrap)]
    command += ["--seed", str(evaluate.seed), "--min-group-n", str(evaluate.min_group_n)]
    return StagePlan(
        [command], predictions, [out / "report.json"], {"evaluate": ctx.cfg.evaluate.model_dump(mode="json")}
    )
