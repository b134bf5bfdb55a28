"""Benchmark of the generate stage, as ratios against the bare library calls, in one run.

    python bench/generate.py                                   # CPU: the tiny pipeline, 64 px, 1 thread
    python bench/generate.py --model runwayml/stable-diffusion-v1-5 --size 512 --steps 20 --batch 8

1. Diffusion faces: fairforge's pristine phase (planned batches, one generator per image, black/NaN
   check, detect-align-crop, PNG encoding, atomic writes, manifest shards) vs a bare
   `pipe(prompt=[...], generator=[...], output_type="np")` loop over the same prompts with the same
   model, batch and steps: images/s ratio (target >= 0.95). The pipeline is loaded once and shared.
2. SBI: self-blended images/s on one core (OpenCV and numpy single-threaded), 256 px crops of
   scikit-image's astronaut aligned with the dlib backend.
Timings interleave the contenders in rounds and report medians, so a busy machine slows all alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fairforge.config import validate
from fairforge.config.generate import GenerateConfig

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def bare_loop(
    pipe: DiffusionPipeline, cfg: GenerateConfig, prompts: list[str], negative: str, seeds: list[int]
) -> None:
    """What a user writes without fairforge: the pipeline over the prompts, batch by batch."""
    import torch

    d = cfg.diffusion
    for start in range(0, len(prompts), d.batch_size):
        batch = slice(start, start + d.batch_size)
        with torch.inference_mode():
            pipe(
                prompt=prompts[batch],
                negative_prompt=[negative] * len(prompts[batch]),
                num_inference_steps=d.steps,
                guidance_scale=d.guidance,
                height=d.height,
                width=d.width,
                generator=[torch.Generator("cpu").manual_seed(s) for s in seeds[batch]],
                output_type="np",
            )


def bench_diffusion(args: argparse.Namespace) -> None:
    from fairforge.generate.diffusion import torch_threads
    from fairforge.generate.job import Job, JobOptions
    from fairforge.taxonomy import Taxonomy

    cfg = validate(
        GenerateConfig,
        {
            "methods": ["diffusion"],
            "num_threads": args.threads or None,
            "align": {"crop_size": args.size},
            "diffusion": {
                "model": args.model,
                "steps": args.steps,
                "batch_size": args.batch,
                "width": args.size,
                "height": args.size,
                "dtype": args.dtype,
            },
        },
    )
    cells = ["male-Asian-20-29", "female-Black-30-39", "male-White-40-49", "female-Others-50-59"]
    n_per_cell = args.images // len(cells)
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    shared_pipe = None
    stage_times, bare_times = [], []
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms up both
            out = work / f"run{round_}"
            job = Job(cfg, out, 0, Taxonomy(), JobOptions(cells=cells, count_per_cell=n_per_cell, progress=False))
            job.load()
            job._pipe = shared_pipe or job.pipeline()
            shared_pipe = job._pipe
            rows = job.rows
            prompts, seeds = rows["prompt"].tolist(), [int(s) for s in rows["seed"]]
            with torch_threads(cfg.num_threads):
                t0 = time.perf_counter()
                bare_loop(shared_pipe, cfg, prompts, cfg.prompt.negative, seeds)
                t1 = time.perf_counter()
                job.run()
                t2 = time.perf_counter()
            if round_ > 0:
                bare_times.append(t1 - t0)
                stage_times.append(t2 - t1)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = n_per_cell * len(cells)
    bare, stage = n / statistics.median(bare_times), n / statistics.median(stage_times)
    print(
        f"diffusion ({args.model}, {args.size}px, {args.steps} steps, batch {args.batch}, {n} images, {args.threads} threads)"
    )
    print(f"  bare diffusers loop : {bare:8.2f} images/s")
    print(f"  fairforge stage     : {stage:8.2f} images/s")
    print(f"  ratio stage / bare  : {stage / bare:8.3f}  (target >= 0.95)")


def bench_sbi(args: argparse.Namespace) -> None:
    import cv2
    from skimage import data

    from fairforge.config.generate import DetectorConfig
    from fairforge.generate.align import Aligner
    from fairforge.generate.faces import build_detector
    from fairforge.generate.sbi import self_blend

    cv2.setNumThreads(1)
    image = data.astronaut()
    aligner = Aligner(crop_size=256)
    face = build_detector(DetectorConfig(backend="dlib"), aligner).best(image)
    crop, landmarks = aligner.align(image, face.kps, face.landmarks)
    self_blend(crop, landmarks, 0)
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for seed in range(args.sbi_images):
            self_blend(crop, landmarks, seed)
        times.append(time.perf_counter() - t0)
    print(f"sbi (256px crops, one core): {args.sbi_images / statistics.median(times):8.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny:diffusion")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: fair on a shared CPU; 0: torch's default)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sbi-images", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    np.seterr(all="ignore")
    bench_diffusion(args)
    bench_sbi(args)


if __name__ == "__main__":
    main()
