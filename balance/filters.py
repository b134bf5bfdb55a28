"""The filter chain: each filter looks at the rows still alive and rejects some, with a reason.

Filters run in a fixed order (`chain()`), cheapest verdict first after the classifier's, and each
sees only the survivors of the ones before, so a blurry image never knocks a sharp near-duplicate
out and every rejected row carries exactly one reason: the first filter it failed. A filter is a
function (rows, config, taxonomy) -> DataFrame indexed by the rejected rows with `reason` and
`detail`; registering a new one is one decorator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from fairforge.config.balance import BalanceConfig
from fairforge.errors import ConfigError
from fairforge.registry import Registry
from fairforge.taxonomy import UNKNOWN, Taxonomy

from .dedup import near_duplicates

FilterFn = Callable[[pd.DataFrame, BalanceConfig, Taxonomy], pd.DataFrame]
FILTERS: Registry[FilterFn] = Registry("filter")
#: The run order of the built-in filters; filters registered elsewhere run after them, by name.
ORDER = ("readable", "attribute", "face", "size", "sharpness", "duplicate", "identity")

#: Every reason a row can be rejected for, in the order the report lists them.
REASONS = (
    "unreadable",
    "attribute_mismatch",
    "low_confidence",
    "no_face",
    "low_face_score",
    "too_small",
    "too_blurry",
    "exact_duplicate",
    "near_duplicate",
    "same_identity",
    "not_targeted",
    "surplus",
)


def register_filter(name: str) -> Callable[[FilterFn], FilterFn]:
    """`@register_filter("name")`: a filter of the chain (a duplicate name is refused)."""
    return FILTERS.register(name)


def chain() -> list[tuple[str, FilterFn]]:
    """(name, filter) in run order: ORDER first, then any other registered filter by name."""
    return [(n, FILTERS.get(n)) for n in ORDER] + [(n, f) for n, f in FILTERS.items() if n not in ORDER]


def _rejects(index: pd.Index, reason: str | list[str], detail: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"reason": reason, "detail": detail}, index=index)


@register_filter("readable")
def unreadable(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    bad = rows.index[~rows["readable"].fillna(False).astype(bool)]
    return _rejects(bad, "unreadable", ["the image file could not be decoded"] * len(bad))


@register_filter("attribute")
def attribute(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    """Predicted cell differs from the intended one, or a confidence is below its tau."""
    mismatch: dict[int, list[str]] = {}
    low: dict[int, list[str]] = {}
    for attr in cfg.verify.match:
        intended, pred = rows[attr].astype(object), rows[f"pred_{attr}"].astype(object)
        conf = rows[f"pred_{attr}_conf"].astype(float)
        known = intended.notna() & (intended != UNKNOWN)
        if attr == "age":
            order = {a: i for i, a in enumerate(taxonomy.ages)}
            gap = (intended.map(order) - pred.map(order)).abs()
            wrong = known & ~(gap <= cfg.verify.age_tolerance)
        else:
            wrong = known & (pred != intended)
        for i in rows.index[wrong]:
            mismatch.setdefault(i, []).append(f"{attr}: predicted {pred[i]} ({conf[i]:.2f}), intended {intended[i]}")
        tau = cfg.verify.tau.get(attr)
        if tau is not None:
            for i in rows.index[known & ~wrong & (conf < tau)]:
                low.setdefault(i, []).append(f"{attr}: {pred[i]} at {conf[i]:.2f} < tau {tau}")
    index = list(mismatch) + [i for i in low if i not in mismatch]
    reasons = ["attribute_mismatch" if i in mismatch else "low_confidence" for i in index]
    details = ["; ".join(mismatch.get(i) or low[i]) for i in index]
    return _rejects(pd.Index(index), reasons, details)


@register_filter("face")
def face(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    """No face found, or the detector's score below `face.min_score`."""
    if cfg.face.detector == "none":
        return _rejects(pd.Index([]), [], [])
    score = pd.to_numeric(rows["face_score"], errors="coerce")
    if cfg.face.detector == "manifest" and score.isna().all():
        raise ConfigError(
            "balance.face.detector: `manifest`, but no row has a face_score (generate's `template` detector "
            "writes none); set it to `dlib` (detect here) or `none`"
        )
    none = rows.index[score.isna()]
    low = rows.index[score.notna() & (score < cfg.face.min_score)]
    source = (
        "no face_score in the manifest" if cfg.face.detector == "manifest" else f"{cfg.face.detector} found no face"
    )
    out = [
        _rejects(none, "no_face", [source] * len(none)),
        _rejects(low, "low_face_score", [f"face score {score[i]:.3f} < {cfg.face.min_score}" for i in low]),
    ]
    return pd.concat(out)


@register_filter("size")
def size(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    short = np.minimum(rows["width"].astype(int), rows["height"].astype(int))
    bad = rows.index[short < cfg.min_size]
    details = [f"{rows.at[i, 'width']}x{rows.at[i, 'height']} < {cfg.min_size} px" for i in bad]
    return _rejects(bad, "too_small", details)


@register_filter("sharpness")
def blur(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    value = rows["sharpness"].astype(float)
    bad = rows.index[value < cfg.sharpness.min]
    details = [f"variance of Laplacian {value[i]:.1f} < {cfg.sharpness.min}" for i in bad]
    return _rejects(bad, "too_blurry", details)


@register_filter("duplicate")
def duplicate(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    """Exact (same sha256) then near (phash Hamming <= max_hamming) duplicates; the first row wins."""
    if not cfg.dedup.enabled:
        return _rejects(pd.Index([]), [], [])
    out = []
    for _, group in _scoped(rows, cfg.dedup.scope):
        first = group.drop_duplicates("sha256", keep="first")
        exact = group.index.difference(first.index, sort=False)
        keeper = dict(zip(first["sha256"], first["id"]))
        out.append(
            _rejects(exact, "exact_duplicate", [f"same bytes as {keeper[group.at[i, 'sha256']]}" for i in exact])
        )
        near = near_duplicates(first["phash"].tolist(), cfg.dedup.max_hamming)
        ids = first["id"].tolist()
        index = first.index[[j for j, _, _ in near]]
        details = [f"phash within {d} bits of {ids[k]}" for _, k, d in near]
        out.append(_rejects(index, "near_duplicate", details))
    return pd.concat(out) if out else _rejects(pd.Index([]), [], [])


@register_filter("identity")
def identity(rows: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    """Same identity as an earlier kept row (embedding cosine >= threshold), when a model is set."""
    if not cfg.identity.model:
        return _rejects(pd.Index([]), [], [])
    checked = rows[rows["method"].isin(cfg.identity.methods) & rows["embedding"].notna()]
    out = []
    for _, group in _scoped(checked, cfg.identity.scope):
        emb = np.stack([np.asarray(e, dtype=np.float32) for e in group["embedding"]])
        ids = group["id"].tolist()
        hits = same_identity(emb, cfg.identity.threshold)
        index = group.index[[j for j, _, _ in hits]]
        out.append(_rejects(index, "same_identity", [f"cosine {s:.3f} with {ids[k]}" for _, k, s in hits]))
    return pd.concat(out) if out else _rejects(pd.Index([]), [], [])


def same_identity(emb: np.ndarray, threshold: float, block: int = 4096) -> list[tuple[int, int, float]]:
    """Greedy in row order: (row, earlier kept row, cosine) for each row too close to a kept one."""
    kept = np.zeros(len(emb), dtype=bool)
    hits = []
    for start in range(0, len(emb), block):
        sims = emb[start : start + block] @ emb[: start + block].T
        for j in range(sims.shape[0]):
            row = start + j
            candidates = sims[j, :row] * kept[:row] - 2.0 * ~kept[:row]
            best = int(np.argmax(candidates)) if row else -1
            if row and candidates[best] >= threshold:
                hits.append((row, best, float(candidates[best])))
            else:
                kept[row] = True
    return hits


def _scoped(rows: pd.DataFrame, scope: list[str]) -> Iterable[tuple[Any, pd.DataFrame]]:
    """Groups of rows compared with each other (all rows when `scope` is empty), in row order."""
    if not scope:
        return [((), rows)]
    return rows.groupby(scope, sort=False, dropna=False)


def run_filters(frame: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> tuple[pd.Index, pd.DataFrame]:
    """Apply every filter in order; returns (index of survivors, rejects with reason/detail/filter)."""
    alive = frame
    rejected = []
    for name, fn in chain():
        if alive.empty:
            break
        out = fn(alive, cfg, taxonomy)
        if len(out):
            rejected.append(out.assign(filter=name))
            alive = alive.drop(index=out.index)
    rejects = pd.concat(rejected) if rejected else pd.DataFrame(columns=["reason", "detail", "filter"])
    return alive.index, rejects
