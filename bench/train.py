"""Benchmark of the train stage, as ratios against the bare library calls, in one run.

    python bench/train.py                       # CPU: resnet18 at 64 px, batch 32
    python bench/train.py --backbone efficientnet_b4 --resolution 380 --precision bf16   # a GPU

1. fairforge's ERM step (method registry -> StepContext -> update rule -> multi-task detector)
   vs a bare PyTorch + timm loop on the same model, batch and in-memory data: samples/s ratio
   (target >= 0.95).
2. Step time of each method relative to `erm` on the same backbone and batch (`--methods`; `ddfg`
   is SAM: target <= 2.05). A new method is benchmarked by naming it, nothing else: the step
   runs through the same registry the trainer uses; `METHOD_OVERRIDES` holds the config a method
   needs on top of the shared one.
3. DataLoader images/s reading a manifest of JPEG files (decode + resize in workers) vs the ERM
   step's consumption (target >= 2x).
Timings interleave the contenders in rounds and report medians, so a busy machine slows all alike.
On a GPU it also prints images/s and MFU (model FLOPs from a FLOP counter x 3 for fwd+bwd).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fairforge.config import load_model
from fairforge.config.train import TrainConfig
from fairforge.manifest import write_manifest
from fairforge.taxonomy import DEFAULT_TAXONOMY
from fairforge.train.data import ManifestDataset, data_info, load_manifests, make_loader, normalize_batch
from fairforge.train.methods import get_method
from fairforge.train.methods.base import StepContext
from fairforge.train.optim import build_optimizer, build_scheduler
from fairforge.train.updates import get_update

#: Config each method needs on top of the shared benchmark config (methods helper: add yours).
METHOD_OVERRIDES: dict[str, dict[str, Any]] = {
    "erm": {"optimizer": {"name": "adam"}, "model": {"heads": {"group": 0.0}}},
    "ddfg": {"optimizer": {"name": "sam", "base": "adam"}, "model": {"heads": {"group": 0.1}}},
}

#: Peak dense bf16 FLOP/s for MFU, by device-name substring.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def _config(args: argparse.Namespace, method: str, extra: dict[str, Any] | None = None) -> TrainConfig:
    data = {
        "method": method,
        "model": {"backbone": args.backbone},
        "data": {"resolution": args.resolution, "batch_size": args.batch_size},
        "mixed_precision": args.precision,
        "log_with": [],
    }
    overrides = METHOD_OVERRIDES.get(method, {})
    for key, value in [*overrides.items(), *(extra or {}).items()]:
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return load_model(TrainConfig, data=data)


def _batches(args: argparse.Namespace, n: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """In-memory uint8 batches with labels and demographic targets, already on the device."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        b = args.batch_size
        out.append(
            {
                "image": torch.randint(
                    0, 256, (b, 3, args.resolution, args.resolution), dtype=torch.uint8, generator=g
                ),
                "label": torch.randint(0, 2, (b,), generator=g),
                "gender": torch.randint(0, 2, (b,), generator=g),
                "race": torch.randint(0, 4, (b,), generator=g),
                "group": torch.randint(0, 8, (b,), generator=g),
                "domain": torch.zeros(b, dtype=torch.long),
                "method": torch.randint(0, 2, (b,), generator=g),
                "source": torch.zeros(b, dtype=torch.long),
                "index": torch.arange(b),
            }
        )
    return [{k: v.to(device) for k, v in batch.items()} for batch in out]


def _info() -> Any:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "label": [0, 1] * 8,
            "gender": ["male", "female"] * 8,
            "race": ["Asian", "White", "Black", "Others"] * 4,
            "method": ["real", "diffusion"] * 8,
            "domain": [None] * 16,
            "source": ["bench"] * 16,
        }
    )
    return data_info(frame, DEFAULT_TAXONOMY)


_INFO = _info()


def fairforge_step(
    args: argparse.Namespace, method_name: str, accelerator, extra: dict[str, Any] | None = None
) -> Callable[[dict], None]:  # noqa: ANN001
    """One training step exactly as train/run.py's loop body runs it (`extra`: config sections merged over)."""
    cfg = _config(args, method_name, extra)
    method = get_method(cfg.method)
    torch.manual_seed(0)
    model = method.build_model(cfg, _INFO)
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = build_scheduler(optimizer.optimizer, cfg.scheduler, total_steps=10**6)
    rule = get_update(cfg.optimizer.name, cfg.optimizer.update)
    model.train()
    state = {"step": 0}

    def step(batch: dict[str, torch.Tensor]) -> None:
        torch.manual_seed(hash((cfg.seed, state["step"], accelerator.process_index)) % 2**63)
        ctx = StepContext(accelerator, model, optimizer, scheduler, cfg, _INFO, state["step"], rule)
        method.training_step(ctx, normalize_batch(batch, cfg.data))
        state["step"] += 1

    return step


def bare_step(args: argparse.Namespace, device: torch.device) -> Callable[[dict], None]:
    """The same model and optimizer in the plainest PyTorch + timm loop."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(args.backbone, num_classes=1).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)

    def step(batch: dict[str, torch.Tensor]) -> None:
        x = (batch["image"].float() - mean) / std
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x).squeeze(-1)
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch["label"].float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    steps: dict[str, Callable[[dict], None]], batches: list[dict], rounds: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per step of each contender, measured in rotating rounds after a warmup."""
    for step in steps.values():
        for batch in batches[:2]:
            step(batch)
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate: no contender always goes first
            step = steps[name]
            _sync(device)
            start = time.perf_counter()
            for batch in batches:
                step(batch)
            _sync(device)
            times[name].append((time.perf_counter() - start) / len(batches))
    return {name: statistics.median(values) for name, values in times.items()}


def loader_images_per_second(args: argparse.Namespace, folder: Path) -> float:
    """Images/s a DataLoader delivers from a manifest of JPEG crops (the stored size, resized on load)."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(args.loader_images):
        path = f"img/{i:05d}.jpg"
        pixels = rng.integers(0, 256, (args.stored_size, args.stored_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / path, quality=90)
        rows.append(
            {"id": f"b{i}", "path": path, "label": i % 2, "method": "real", "source": "bench", "split": "train"}
        )
    manifest = write_manifest(rows, folder / "manifest.parquet")
    cfg = _config(args, "erm")
    data_cfg = cfg.data.model_copy(update={"num_workers": args.workers})
    frame = load_manifests([str(manifest)], None, "data.train", DEFAULT_TAXONOMY)
    loader = make_loader(
        ManifestDataset(frame, data_info(frame, DEFAULT_TAXONOMY), data_cfg), data_cfg, args.batch_size
    )
    iterator = iter(loader)
    next(iterator)  # workers started
    start, seen = time.perf_counter(), 0
    for batch in iterator:
        seen += len(batch["label"])
    return seen / (time.perf_counter() - start)


def model_flops(args: argparse.Namespace, device: torch.device) -> float:
    """Forward FLOPs of one batch through the backbone (torch's FLOP counter)."""
    import timm
    from torch.utils.flop_counter import FlopCounterMode

    model = timm.create_model(args.backbone, num_classes=1).to(device)
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", choices=["no", "bf16", "fp16"], default="no")
    parser.add_argument("--steps", type=int, default=6, help="steps per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--methods", nargs="+", default=list(METHOD_OVERRIDES), help="methods timed against erm")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--loader-images", type=int, default=512)
    parser.add_argument("--stored-size", type=int, default=256, help="side of the JPEG files on disk")
    args = parser.parse_args()

    from accelerate import Accelerator

    from fairforge.train.devices import no_accelerator

    accelerator = Accelerator(cpu=no_accelerator(), mixed_precision=args.precision)
    device = accelerator.device
    batches = _batches(args, args.steps, device)
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"{args.backbone} @ {args.resolution}px, batch {args.batch_size}, precision {args.precision}"
    )

    # 1 + 2: every contender in the same interleaved rounds
    steps = {"bare": bare_step(args, device)}
    for name in dict.fromkeys(["erm", *args.methods]):
        steps[name] = fairforge_step(args, name, accelerator)
    seconds = interleaved(steps, batches, args.rounds, device)
    rate = {name: args.batch_size / s for name, s in seconds.items()}
    print("\n| step | s/step | samples/s | vs bare | vs erm |\n|---|---|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.4f} | {rate[name]:.1f} | {rate[name] / rate['bare']:.3f} | {s / seconds['erm']:.3f} |")
    print(f"\nERM step vs bare PyTorch+timm: {rate['erm'] / rate['bare']:.3f}x samples/s (target >= 0.95)")
    if "ddfg" in seconds:
        print(f"SAM (ddfg) / ERM step time: {seconds['ddfg'] / seconds['erm']:.3f} (target <= 2.05)")
    if device.type == "cuda":
        flops = 3 * model_flops(args, device)
        peak = next((v for k, v in PEAK_FLOPS.items() if k in torch.cuda.get_device_name()), None)
        for name in ("bare", "erm"):
            achieved = flops / seconds[name]
            mfu = f", MFU {achieved / peak:.1%}" if peak else ""
            print(f"{name}: {rate[name]:.0f} images/s, {achieved / 1e12:.1f} TFLOP/s{mfu}")

    # 3: the input pipeline against what the step consumes
    with tempfile.TemporaryDirectory() as tmp:
        loader_rate = loader_images_per_second(args, Path(tmp))
    print(
        f"DataLoader ({args.workers} workers, {args.stored_size}px JPEG -> {args.resolution}px): {loader_rate:.0f} images/s "
        f"= {loader_rate / rate['erm']:.2f}x the ERM step's {rate['erm']:.0f} samples/s (target >= 2x)"
    )


if __name__ == "__main__":
    main()
