"""Benchmark of the balance stage's attribute classification, as a ratio against a bare forward.

    python bench/balance.py                                             # CPU: tiny FairFace ResNet-18
    python bench/balance.py --path res34_fair_align_multi_7_20190809.pt --arch resnet34 --n 2048 --batch 128

1. Classification: `AttributeClassifier.predict` (forward, softmax per attribute, the by-name sum
   onto the taxonomy, verdicts and confidences to numpy) vs a bare `model(x)` of the same model
   over the same preprocessed tensors: images/s ratio (target >= 0.9).
2. The whole measurement pass (`measure.measure`: DataLoader decode, sharpness, perceptual hash,
   sha256, preprocessing, classification, cache shards) over PNG files of the same size, images/s,
   for scale: what a balance run costs per image.
Timings interleave the contenders in rounds (alternating who goes first) and report medians, and the
ratio is the median of per-round ratios, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from fairforge.balance.backends import load_classifier
from fairforge.balance.classifier import pick_device
from fairforge.balance.measure import MeasureCache, Measurers, measure
from fairforge.config import PipelineConfig, validate
from fairforge.config.balance import ClassifierConfig
from fairforge.taxonomy import DEFAULT_TAXONOMY


def images(n: int, size: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def timed(fn: Callable[[], object], sync: Callable[[], object]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="tiny:fairface", help="FairFace state dict (default: the tiny one)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--n", type=int, default=256, help="images per timed pass")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the measurement pass")
    args = parser.parse_args()

    device = pick_device(args.device)
    cfg = ClassifierConfig(path=args.path, arch=args.arch, image_size=args.image_size)
    clf = load_classifier(cfg, "bench", DEFAULT_TAXONOMY).to(device, args.precision)
    pil = images(args.n, args.image_size)
    batches = [
        torch.stack([clf.transform(im) for im in pil[i : i + args.batch]]).to(device)
        for i in range(0, args.n, args.batch)
    ]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = clf.model

    def bare() -> None:
        with torch.inference_mode():
            for x in batches:
                if clf.autocast_dtype is not None:
                    with torch.autocast(device.type, dtype=clf.autocast_dtype):
                        model(x)
                else:
                    model(x)

    def ours() -> None:
        for x in batches:
            clf.predict(x)

    bare(), ours()  # warm-up (cuDNN autotune, allocator)
    times: dict[str, list[float]] = {"bare": [], "fairforge": []}
    for k in range(args.rounds):  # alternate who goes first, so drift in machine load hits both alike
        for name in ("bare", "fairforge") if k % 2 == 0 else ("fairforge", "bare"):
            times[name].append(timed(bare if name == "bare" else ours, sync))
    rate = {k: args.n / statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(b / f for b, f in zip(times["bare"], times["fairforge"]))
    print(json.dumps({"device": str(device), "model": f"{args.path} ({args.arch})", "batch": args.batch, "n": args.n}))
    print(
        f"classification: fairforge {rate['fairforge']:.1f} img/s, bare forward {rate['bare']:.1f} img/s, ratio {ratio:.3f} (median of per-round ratios; target >= 0.9)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, im in enumerate(pil):
            im.save(root / f"{i:06d}.png")
        frame = pd.DataFrame(
            {"id": [f"{i:06d}" for i in range(args.n)], "path": [f"{i:06d}.png" for i in range(args.n)]}
        )
        config = validate(
            PipelineConfig,
            {
                "balance": {
                    "classifiers": [cfg.model_dump()],
                    "verify": {"match": []},
                    "batch_size": args.batch,
                    "num_workers": args.workers,
                    "device": args.device,
                    "precision": args.precision,
                }
            },
        )
        measurers = Measurers.load(config.balance, DEFAULT_TAXONOMY)
        passes = []
        for k in range(max(1, args.rounds // 2)):
            cache = MeasureCache(root / f"cache{k}")
            passes.append(timed(lambda c=cache: measure(frame, root, measurers, c, progress=False), sync))
        print(
            f"measurement pass (decode + quality + classify, {args.workers} workers): {args.n / statistics.median(passes):.1f} img/s"
        )


if __name__ == "__main__":
    main()
