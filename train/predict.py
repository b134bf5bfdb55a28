"""Scores for a manifest: used by validation every epoch and by `fairforge train predict`.

The predictions file is the contract `fairforge evaluate` reads: Parquet with `label` (0/1),
`score` (P(fake) in [0, 1]), `gender`, `race`, `source`, `age`, `method`, `id` and `video` (the
manifest's `video`, else `<identity>/<method>`: the frames of one person under one manipulation,
for video-level metrics; a person's real frames and their fakes share the identity, so the method
keeps them apart; null without an identity), one row per manifest row, in manifest order.
`score` is P(fake) as validation computes it, or with `--score reference` the score the method's
authors' test script reports (PG-FDD: the sigmoid of the fake logit alone), to compare with their
published tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm

from fairforge.atomic import atomic_open
from fairforge.config.train import DataConfig
from fairforge.taxonomy import UNKNOWN

from .data import normalize_batch
from .methods.base import Method

PREDICTION_COLUMNS = ("id", "label", "score", "gender", "race", "age", "source", "method", "video")
#: `--score`: `softmax` is the method's P(fake) (the paper's); `reference` its authors' test-time score
SCORES = ("softmax", "reference")


@torch.no_grad()
def score_loader(
    method: Method,
    model: nn.Module,
    loader,
    accelerator,
    data_cfg: DataConfig,
    desc: str = "predict",
    score: str = "softmax",
) -> tuple[np.ndarray, np.ndarray]:
    """(row indexes, scores) over a prepared loader, gathered from every process (duplicates dropped)."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    score_fn = method.reference_score if score == "reference" else method.predict
    was_training = model.training
    model.eval()
    bare = accelerator.unwrap_model(model)
    indexes, scores = [], []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        batch = normalize_batch(batch, data_cfg)
        index, score = accelerator.gather_for_metrics((batch["index"], score_fn(bare, batch).float()))
        indexes.append(index.cpu().numpy())
        scores.append(score.cpu().numpy())
    model.train(was_training)
    return np.concatenate(indexes), np.concatenate(scores)


def predictions_frame(frame: pd.DataFrame, indexes: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The predictions contract for `frame`'s rows `indexes` (sorted back into manifest order)."""
    order = np.argsort(indexes, kind="stable")
    rows = frame.iloc[indexes[order]]
    out = pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            "label": rows["label"].astype(np.int8).to_numpy(),
            "score": np.clip(scores[order].astype(np.float64), 0.0, 1.0),
        }
    )
    for column in ("gender", "race", "age"):
        out[column] = rows[column].fillna(UNKNOWN).astype(str).to_numpy()
    out["source"] = rows["source"].astype(str).to_numpy()
    out["method"] = rows["method"].astype(str).to_numpy()
    out["video"] = video_ids(rows)
    return out[list(PREDICTION_COLUMNS)]


def video_ids(rows: pd.DataFrame) -> np.ndarray:
    """The video of each row: the manifest's `video`, else identity/method; None where unknown."""
    if "video" in rows.columns:
        video = rows["video"]
    elif "identity" in rows.columns:
        video = rows["identity"].astype("string") + "/" + rows["method"].astype("string")
    else:
        return np.full(len(rows), None, dtype=object)
    return video.astype(object).where(video.notna(), None).to_numpy()


def write_predictions(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    with atomic_open(target, "wb") as handle:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), handle)
    return target


def predict_manifest(
    checkpoint: str | os.PathLike[str],
    manifests: list[str],
    out: str | os.PathLike[str],
    split: str | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    score: str = "softmax",
) -> Path:
    """`fairforge train predict`: score every row of `manifests` with an exported detector (`score`: SCORES)."""
    from accelerate import Accelerator

    from .checkpoint import load_export, resolve_export
    from .data import ManifestDataset, load_manifests, make_loader
    from .devices import no_accelerator
    from .methods import get_method

    cfg, info, weights = load_export(resolve_export(checkpoint))
    # The architecture only: the weights come from the export, nothing is downloaded.
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"pretrained": False})})
    data_cfg = cfg.data if num_workers is None else cfg.data.model_copy(update={"num_workers": num_workers})
    method = get_method(cfg.method)
    model = method.build_model(cfg, info)
    model.load_state_dict(weights)
    frame = load_manifests(manifests, split, "--manifest", info.taxonomy)
    if frame.empty:
        from fairforge.errors import ManifestError

        raise ManifestError(", ".join(frame.attrs["files"]), "has no rows to score (an empty manifest)")
    accelerator = Accelerator(cpu=no_accelerator(), mixed_precision=cfg.mixed_precision)
    loader = make_loader(ManifestDataset(frame, info, data_cfg), data_cfg, batch_size or data_cfg.eval_batch_size)
    model, loader = accelerator.prepare(model, loader)
    indexes, scores = score_loader(method, model, loader, accelerator, data_cfg, score=score)
    target = Path(out)
    if accelerator.is_main_process:
        write_predictions(predictions_frame(frame, indexes, scores), target)
    accelerator.wait_for_everyone()
    return target


__all__ = ["PREDICTION_COLUMNS", "SCORES", "predict_manifest", "predictions_frame", "score_loader", "write_predictions"]
