"""Train a deepfake detector.

    accelerate launch train/run.py --config train/configs/ddfg.yaml [--set key=value ...] [--resume latest]
    fairforge train --config CONFIG ...            # the same, in one process

On a machine without a GPU the trainer picks Accelerate's CPU backend (`cpu=True`) itself, and
Accelerate's multi-process launcher starts synchronized processes (gloo); name it with
`--multi_gpu` (without it, `accelerate launch --num_processes 2` on a CPU-only machine silently
starts ONE process, and `--cpu` does too):

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no train/run.py --config CONFIG

The script reads top to bottom: config -> Accelerator -> seed -> data -> model -> optimizer ->
prepare -> schedule -> resume -> loop (train, validate, checkpoint) -> export. What differs
between methods lives in `train/methods/` (the model and the update); what differs between
optimizers in `train/updates/`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from fairforge.atomic import atomic_write_json, atomic_write_text
from fairforge.config import dump_yaml, load_model
from fairforge.config.pipeline import find_train_config
from fairforge.config.train import TrainConfig
from fairforge.manifest import file_sha256
from fairforge.train.checkpoint import (
    TrainState,
    export,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
    write_model_card,
)
from fairforge.train.cli import add_train_arguments
from fairforge.train.data import (
    ManifestDataset,
    data_info,
    load_manifests,
    make_loader,
    normalize_batch,
    select_split,
)
from fairforge.train.devices import no_accelerator
from fairforge.train.methods import get_method
from fairforge.train.methods.base import StepContext
from fairforge.train.optim import build_optimizer, build_scheduler
from fairforge.train.predict import predictions_frame, score_loader
from fairforge.train.sampling import TrainSampler
from fairforge.train.updates import get_update
from fairforge.train.validate import selection_score, validation_metrics

logger = logging.getLogger("fairforge.train")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a deepfake detector (see train/configs/).")
    add_train_arguments(parser)
    return parser.parse_args(argv)


def load_config(config: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """A config file, or the name of a shipped one (`train/configs/<name>.yaml`)."""
    return load_model(TrainConfig, find_train_config(config, key="--config"), overrides)


def train(cfg: TrainConfig, resume: str | None = None) -> dict[str, Any]:
    """Run training; returns the final metrics. Every process calls this."""
    taxonomy = cfg.taxonomy.build("train.taxonomy")
    method = get_method(cfg.method)
    method.check_config(cfg)
    output_dir = Path(cfg.output_dir)

    # The Accelerator first: it sets up the processes, the device and mixed precision.
    accelerator = Accelerator(
        cpu=no_accelerator() if cfg.cpu is None else cfg.cpu,
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=cfg.log_with or None,
        project_dir=str(output_dir),
    )
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    set_seed(cfg.seed)
    torch.use_deterministic_algorithms(cfg.deterministic)  # process-wide: set either way, never left over
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / "config.yaml", dump_yaml(cfg))
    accelerator.wait_for_everyone()  # the run folder exists before any process writes into it

    # Data: manifests -> vocabularies -> datasets -> loaders. Validation rows come from `data.val`,
    # or from the training manifests' `val_split` rows.
    manifests = load_manifests(cfg.data.train, None, "data.train", taxonomy)
    train_frame = select_split(manifests, cfg.data.train_split, "data.train")
    info = data_info(train_frame, taxonomy)
    if cfg.data.val:
        val_frame = load_manifests(cfg.data.val, cfg.data.val_split, "data.val", taxonomy)
    else:
        val_frame = select_split(manifests, cfg.data.val_split, "data.train", required=False)
        if val_frame is None:
            logger.warning("no validation: data.val is empty and no training row has split %r", cfg.data.val_split)
    train_set = ManifestDataset(train_frame, info, cfg.data, train=True, skipped_log=output_dir / "skipped_ids.txt")
    sampler = TrainSampler(
        train_frame,
        cfg.data,
        taxonomy,
        cfg.seed,
        paired=cfg.data.paired or method.paired_batches,
        halves=method.real_fake_halves,
    )
    train_loader = make_loader(train_set, cfg.data, cfg.data.batch_size, sampler, drop_last=True)
    val_loader = None
    if val_frame is not None:
        val_loader = make_loader(ManifestDataset(val_frame, info, cfg.data), cfg.data, cfg.data.eval_batch_size)

    # The model after set_seed, so the seed governs its initial weights; the optimizer on its parameters.
    model = method.build_model(cfg, info)
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)

    # The schedule after `prepare`: sharding changes the number of batches each process sees.
    updates_per_epoch = len(train_loader) // cfg.gradient_accumulation_steps
    if updates_per_epoch == 0:
        raise _too_few_rows(cfg, len(train_frame), accelerator.num_processes)
    total_updates = min(cfg.max_steps or math.inf, updates_per_epoch * cfg.epochs)
    scheduler = build_scheduler(optimizer.optimizer, cfg.scheduler, int(total_updates), updates_per_epoch)
    update_rule = get_update(cfg.optimizer.name, cfg.optimizer.update)

    state = TrainState()
    if resume is not None:
        checkpoint = resolve_resume(resume, output_dir)
        state = load_checkpoint(accelerator, checkpoint, scheduler)
        accelerator.print(
            f"resumed from {checkpoint}: epoch {state.epoch}, batch {state.batch_in_epoch}, update {state.step}"
        )
    accelerator.init_trackers("fairforge-train", config=_hparams(cfg))

    logs: dict[str, Any] = {}
    while state.epoch < cfg.epochs and state.step < total_updates:
        model.train()
        train_loader.set_epoch(state.epoch)
        # Mid-epoch resume: skip the batches already trained on (the sampler's order is fixed by seed and epoch).
        epoch_loader = (
            accelerator.skip_first_batches(train_loader, state.batch_in_epoch) if state.batch_in_epoch else train_loader
        )
        bar = tqdm(
            total=len(train_loader),
            initial=state.batch_in_epoch,
            desc=f"epoch {state.epoch}",
            disable=not accelerator.is_local_main_process,
        )
        started = time.perf_counter()
        for batch in epoch_loader:
            # Stochastic layers draw from a generator seeded by (seed, update, process): a resumed run
            # repeats the uninterrupted one exactly, whatever the data loader consumed from the RNG.
            torch.manual_seed(hash((cfg.seed, state.step, accelerator.process_index)) % 2**63)
            ctx = StepContext(accelerator, model, optimizer, scheduler, cfg, info, state.step, update_rule)
            logs = method.training_step(ctx, normalize_batch(batch, cfg.data))
            state.batch_in_epoch += 1
            bar.update(1)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            if state.step % cfg.log_every == 0:
                scalars = {f"train/{k}": float(v) for k, v in logs.items()}
                scalars["train/lr"] = scheduler.get_last_lr()[0]
                accelerator.log(scalars, step=state.step)
                bar.set_postfix(loss=f"{scalars.get('train/overall', float('nan')):.4f}")
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                save_checkpoint(accelerator, output_dir, state, scheduler, cfg.keep_checkpoints)
            if state.step >= total_updates:
                break
        bar.close()
        epoch_done = state.batch_in_epoch >= len(train_loader) or state.step >= total_updates
        if epoch_done:
            metrics = _end_of_epoch(accelerator, method, model, val_loader, val_frame, cfg, state, info, output_dir)
            metrics["train/epoch_seconds"] = time.perf_counter() - started
            accelerator.log({k: v for k, v in metrics.items() if v is not None}, step=state.step)
            state.epoch += 1
            state.batch_in_epoch = 0

    # The end: a last resumable state, the final weights, the model card.
    save_checkpoint(accelerator, output_dir, state, scheduler, cfg.keep_checkpoints)
    final = dict(state.history[-1]) if state.history else {}
    if accelerator.is_main_process:
        export(output_dir / "final", accelerator.unwrap_model(model), cfg, info, final)
        manifests = {path: file_sha256(path) for path in train_frame.attrs["files"]}
        if val_frame is not None:
            manifests.update({path: file_sha256(path) for path in val_frame.attrs["files"]})
        write_model_card(output_dir, cfg, manifests, state, final)
        skipped = output_dir / "skipped_ids.txt"
        if skipped.is_file():
            atomic_write_json(output_dir / "skipped.json", sorted(set(skipped.read_text().split())))
    accelerator.end_training()
    return final


def _end_of_epoch(accelerator, method, model, val_loader, val_frame, cfg, state, info, output_dir) -> dict[str, Any]:  # noqa: ANN001
    """Validate (all processes score, the main one computes metrics), keep the best export."""
    metrics: dict[str, Any] = {"epoch": state.epoch, "step": state.step}
    if val_loader is None:
        return metrics
    indexes, scores = score_loader(method, model, val_loader, accelerator, cfg.data, desc="validate")
    flat, _ = validation_metrics(predictions_frame(val_frame, indexes, scores), info.taxonomy)
    metrics.update(flat)
    state.history.append(metrics)
    score = selection_score(flat, cfg.select)
    if score is not None and (state.best_score is None or score > state.best_score):
        state.best_score, state.best_epoch = score, state.epoch
        if accelerator.is_main_process:
            export(output_dir / "best", accelerator.unwrap_model(model), cfg, info, metrics)
    accelerator.print(
        f"epoch {state.epoch}: val auc {_fmt(flat.get('val/auc'))}, "
        f"F_FPR {_fmt(flat.get('val/F_FPR'))}, best epoch {state.best_epoch}"
    )
    return metrics


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _too_few_rows(cfg: TrainConfig, rows: int, processes: int) -> Exception:
    from fairforge.errors import ConfigError

    return ConfigError(
        f"data.batch_size: {rows} training rows make no full batch of {cfg.data.batch_size} x {processes} process(es)"
    )


def _hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config flattened to scalars (`optimizer.lr`), the form TensorBoard's hparams accept."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        elif isinstance(value, bool | int | float | str):
            out[prefix] = value
        else:
            out[prefix] = str(value)

    walk("", cfg.model_dump(mode="json"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    train(load_config(args.config, args.set), resume=args.resume)
    return 0


if __name__ == "__main__":
    import sys

    from fairforge.cli import VERBOSE_ENV, setup_console
    from fairforge.errors import FairforgeError

    setup_console(os.environ.get(VERBOSE_ENV) == "1")
    try:
        sys.exit(main())
    except FairforgeError as exc:
        print(f"train/run.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
