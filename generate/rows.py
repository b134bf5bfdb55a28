"""Manifest rows with full provenance, built the same way for every method.

Why one builder: the manifest is the only thing the next stages see, so every row names the
generator, seed, prompt, negative prompt, steps, guidance, the faces it was made from (src_id,
dst_id), the file's size and sha256, and — in `gen_params` (JSON) — whatever else shaped its bytes
(the pipeline batch it was generated in, the SBI draws, the pairing rule, the crop settings), so a
single row is enough to regenerate its image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from fairforge.config.generate import GenerateConfig

SOURCE = "fairforge-synth"


def render_params(cfg: GenerateConfig) -> dict[str, Any]:
    """The settings every image of the set shares: detector, alignment, crop, encoding."""
    det = cfg.detector
    backend: dict[str, Any] = {"backend": det.backend, "min_score": det.min_score}
    if det.backend == "dlib":
        backend["dlib"] = det.dlib.model_dump(mode="json")
    elif det.backend == "insightface":
        backend["insightface"] = {k: v for k, v in det.insightface.model_dump(mode="json").items() if k != "root"}
    return {"detector": backend, "align": cfg.align.model_dump(mode="json")}


def render_key(cfg: GenerateConfig) -> str:
    return hashlib.blake2b(json.dumps(render_params(cfg), sort_keys=True).encode(), digest_size=6).hexdigest()


def _none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def manifest_row(
    plan_row: Mapping[str, Any],
    path: str,
    data: bytes,
    image: np.ndarray,
    *,
    seed: int,
    identity: str,
    retries: int,
    gen_params: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
    landmarks: np.ndarray | None = None,
    face_score: float | None = None,
) -> dict[str, Any]:
    """One manifest row. `provenance` overrides prompt/steps/... (fakes carry their target face's)."""
    prov = {k: _none(plan_row.get(k)) for k in ("prompt", "negative_prompt", "steps", "guidance")}
    prov.update(provenance or {})
    return {
        "id": plan_row["id"],
        "path": path,
        "label": int(plan_row["label"]),
        "method": plan_row["method"],
        "source": SOURCE,
        "domain": plan_row["method"],
        "split": _none(plan_row.get("split")),  # given to the people when the plan was made
        "identity": identity,
        "gender": plan_row["gender"],
        "race": plan_row["race"],
        "age": plan_row["age"],
        "generator": plan_row["generator"],
        "seed": int(seed),
        **prov,
        "src_id": _none(plan_row.get("src_id")),
        "dst_id": _none(plan_row.get("dst_id")),
        "src_identity": _none(plan_row.get("src_identity")),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "sha256": hashlib.sha256(data).hexdigest(),
        "face_score": face_score,
        "retries": int(retries),
        "gen_params": json.dumps(gen_params, sort_keys=True, default=str),
        "landmarks": None if landmarks is None else [float(v) for v in np.asarray(landmarks, np.float64).ravel()],
    }


def landmarks_of(row: Mapping[str, Any]) -> np.ndarray | None:
    """The 68x2 landmarks a pristine row carries (crop pixel coordinates), or None."""
    value = row.get("landmarks")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return np.asarray(list(value), dtype=np.float64).reshape(-1, 2)
