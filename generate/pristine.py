"""Pristine faces: one pipeline call per planned batch, retries with new seeds, then detect-align-crop.

A batch is the plan's unit (see plan.py): all of its members are generated together even when only
some are missing, so every image gets exactly the bytes it would get in an uninterrupted run. A
member that comes out black, NaN or faceless is retried in the next round with seed attempt r+1,
together with the other members that failed that round; a member still bad after
`max_retries` rounds is recorded as failed. The rounds are deterministic, so the provenance
(`batch_ids`, `round`) names the exact call to repeat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairforge.config.generate import GenerateConfig

from .align import Aligner
from .diffusion import bad_image, generate_batch, to_uint8
from .faces import Detector, Face
from .plan import derive_seed


@dataclass
class Renderer:
    """Detect, align and crop: the finishing step every image of every method shares."""

    cfg: GenerateConfig
    detector: Detector
    aligner: Aligner

    def find(self, image: np.ndarray) -> Face | None:
        return self.detector.best(image, self.cfg.detector.min_score)

    def crop(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray | None]:
        return self.aligner.align(image, face.kps, face.landmarks)

    def matrix(self, face: Face) -> np.ndarray:
        """The image -> crop similarity of `face` (kept so a swap can be cropped exactly like it)."""
        return self.aligner.matrix(face.kps, face.landmarks)


@dataclass
class Made:
    row: Mapping[str, Any]
    crop: np.ndarray
    landmarks: np.ndarray | None
    face: Face
    seed: int
    round: int
    batch_ids: list[str]
    reasons: Counter = field(default_factory=Counter)
    full: np.ndarray | None = None  # the generated image the crop was cut from


@dataclass
class Failed:
    row: Mapping[str, Any]
    reason: str
    attempts: int
    reasons: Counter = field(default_factory=Counter)


def _cell(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return (row["gender"], row["race"], row["age"])


def round_seeds(rows: Sequence[Mapping[str, Any]], global_seed: int, round_: int) -> list[int]:
    return [derive_seed(global_seed, _cell(r), int(r["k"]), "diffusion", round_) for r in rows]


def generate_round(pipe, cfg: GenerateConfig, rows: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return generate_batch(pipe, cfg.diffusion, [r["prompt"] for r in rows], [r["negative_prompt"] for r in rows], seeds)


def run_batch(
    pipe, cfg: GenerateConfig, renderer: Renderer, members: Sequence[Mapping[str, Any]], global_seed: int
) -> list[Made | Failed]:  # type: ignore[no-untyped-def]
    """Every member of one planned batch, made or failed, in member order."""
    active = list(members)
    reasons: dict[str, Counter] = {r["id"]: Counter() for r in members}
    last: dict[str, str] = {}
    results: dict[str, Made | Failed] = {}
    for round_ in range(cfg.diffusion.max_retries + 1):
        seeds = round_seeds(active, global_seed, round_)
        images = generate_round(pipe, cfg, active, seeds)
        ids = [r["id"] for r in active]
        retry = []
        for row, image, seed in zip(active, images, seeds):
            reason = bad_image(image, cfg.diffusion.black_threshold)
            face = None
            if reason is None:
                pixels = to_uint8(image)
                face = renderer.find(pixels)
                reason = None if face is not None else "no_face"
            if reason is not None:
                reasons[row["id"]][reason] += 1
                last[row["id"]] = reason
                retry.append(row)
                continue
            crop, landmarks = renderer.crop(pixels, face)
            results[row["id"]] = Made(row, crop, landmarks, face, seed, round_, ids, reasons[row["id"]], pixels)
        active = retry
        if not active:
            break
    for row in active:
        results[row["id"]] = Failed(row, last[row["id"]], cfg.diffusion.max_retries + 1, reasons[row["id"]])
    return [results[r["id"]] for r in members]


def gen_params(cfg: GenerateConfig, made: Made, render: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """What shaped a pristine image beyond the standard columns: enough to repeat its exact call."""
    import diffusers
    import torch

    return {
        "batch_ids": made.batch_ids,
        "round": made.round,
        "retry_reasons": dict(made.reasons),
        "size": [cfg.diffusion.width, cfg.diffusion.height],
        "dtype": dtype,
        "scheduler": cfg.diffusion.scheduler,
        "render": dict(render),
        "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__},
    }
