"""Benchmark of the balance stage's attribute classification, as a ratio against a bare forward.

    python bench/balance.py                                             # CPU: tiny FairFace ResNet-18
    python bench/balance.py --path res34_fair_align_multi_7_20190809.pt --arch resnet34 --n 2048 --batch 128
    python bench/balance.py --split-only --split-rows 1000000                  # the split of 1M rows

1. Classification: `AttributeClassifier.predict` (forward, softmax per attribute, the by-name sum
   onto the taxonomy, verdicts and confidences to numpy) vs a bare `model(x)` of the same model
   over the same preprocessed tensors: images/s ratio (target >= 0.9).
2. The whole measurement pass (`measure.measure`: DataLoader decode, sharpness, perceptual hash,
   sha256, preprocessing, classification, cache shards) over PNG files of the same size, images/s,
   for scale: what a balance run costs per image.
3. The split of `--split-rows` rows (default 1M) built in memory like a real mix: the synthetic
   half already split by the plan (faces per cell, blends and swaps from faces of their split),
   the real half FF++-like (persons, frames, `t_s` fakes) with no official split, so it is split
   by person (StratifiedGroupKFold); then the independent leak check. Wall time and peak RSS.
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


def split_set(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` manifest-like rows: half synthetic (plan-split faces, blends, swaps), half FF++-like."""
    from fairforge.splits import split_sequence

    rng = np.random.default_rng(seed)
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    cells = [(g, r, a) for g in ("male", "female") for r in ("Asian", "White", "Black", "Others") for a in DEFAULT_TAXONOMY.ages]
    per_cell = max(1, n // 2 // 2 // len(cells))  # faces per cell; as many fakes (half blends, half swaps)
    parts = []
    for cell in cells:
        key = "-".join(cell)
        ids = np.array([f"diffusion-{key}-{k:07d}" for k in range(per_cell)], dtype=object)
        split = np.array(split_sequence(key, per_cell, fractions), dtype=object)
        src = ids.copy()
        for name in fractions:  # a swap's source: another face of the same split
            members = np.flatnonzero(split == name)
            if members.size > 1:
                src[members] = ids[np.roll(members, 1)]
        method = np.where(np.arange(per_cell) % 2 == 0, "sbi", "inswapper")
        src = np.where(method == "sbi", ids, src)
        base = {"gender": cell[0], "race": cell[1], "age": cell[2], "source": "fairforge-synth"}
        parts.append(pd.DataFrame({"id": ids, "label": 0, "method": "diffusion", "split": split, "identity": ids, **base}))
        parts.append(
            pd.DataFrame(
                {"id": [f"{m}-{i}" for m, i in zip(method, ids)], "label": 1, "method": method, "split": split,
                 "identity": ids, "src_identity": src, "dst_id": ids, "src_id": src, **base}
            )
        )  # fmt: skip
    synthetic = pd.concat(parts, ignore_index=True)
    frames = 10
    persons = max(2, (n - len(synthetic)) // frames // 5 // 2 * 2)  # per person: 1 real + 4 fake videos
    person = np.repeat(np.arange(persons), frames)
    partner = person ^ 1  # pairs (2i, 2i+1): t_s and s_t
    gender = rng.choice(["male", "female"], persons)[person]
    race = rng.choice(["Asian", "White", "Black", "Others"], persons)[person]
    real = [pd.DataFrame({"id": [f"ffpp/real/{p}/{f}" for p, f in zip(person, np.tile(np.arange(frames), persons))],
                          "label": 0, "method": "real", "identity": [f"ffpp/{p:06d}" for p in person]})]  # fmt: skip
    for method in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"):
        real.append(
            pd.DataFrame(
                {"id": [f"ffpp/{method}/{p}_{q}/{f}" for p, q, f in zip(person, partner, np.tile(np.arange(frames), persons))],
                 "label": 1, "method": method, "identity": [f"ffpp/{p:06d}" for p in person],
                 "src_identity": [f"ffpp/{q:06d}" for q in partner]}
            )
        )  # fmt: skip
    ffpp = pd.concat(real, ignore_index=True)
    ffpp = ffpp.assign(source="ffpp", split=None, gender=np.tile(gender, 5), race=np.tile(race, 5), age="unknown")
    return pd.concat([synthetic, ffpp], ignore_index=True)


def bench_split(n: int) -> None:
    """Time and peak memory of the balance split and the leak check over `n` rows."""
    import resource

    import sklearn.model_selection  # noqa: F401 - imported before timing (seconds on a cold disk)

    from fairforge.balance.leaks import check_no_leaks
    from fairforge.balance.run import strata
    from fairforge.balance.split import assign_splits
    from fairforge.config.balance import SplitConfig

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    start = time.perf_counter()
    frame = split_set(n)
    built, base = time.perf_counter() - start, rss_mb()
    start = time.perf_counter()
    split = assign_splits(frame, strata(frame, True), SplitConfig())
    assigned = time.perf_counter() - start
    frame["split"] = split
    start = time.perf_counter()
    check_no_leaks(frame, "bench")
    checked = time.perf_counter() - start
    share = frame.groupby(["source", "label"])["split"].value_counts(normalize=True).unstack().round(3)
    print(json.dumps({"rows": len(frame), "built_s": round(built, 1), "rss_after_build_mb": round(base)}))
    print(
        f"split of {len(frame)} rows: assign {assigned:.1f} s, leak check {checked:.1f} s, "
        f"peak RSS {rss_mb():.0f} MB (+{rss_mb() - base:.0f} MB over the built frame)"
    )
    print(share.to_string())


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
    parser.add_argument("--split-rows", type=int, default=1_000_000, help="rows of the split benchmark")
    parser.add_argument("--split-only", action="store_true", help="run only the split benchmark")
    args = parser.parse_args()
    if args.split_only:
        bench_split(args.split_rows)
        return

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
    bench_split(args.split_rows)


if __name__ == "__main__":
    main()
