"""Predictions in: read and check a predictions Parquet file (train predict -> evaluate contract).

A predictions file has `label` (0 real, 1 fake), `score` (P(fake) in [0, 1]), `gender`, `race`
and optionally `source`, `age`, `method`, `id`. Every check names the file, the first bad row
(0-based, as in manifests) and the column, so a wrong file is fixed in one look rather than
producing a wrong fairness number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fairforge.errors import ManifestError
from fairforge.taxonomy import Taxonomy

from .groups import Cells, make_cells

T = TypeVar("T")

REQUIRED_COLUMNS: tuple[str, ...] = ("label", "score", "gender", "race")
OPTIONAL_COLUMNS: tuple[str, ...] = ("source", "age", "method", "id", "video")


def _first_bad(bad: np.ndarray, values: np.ndarray, file: str, column: str, expected: str) -> None:
    if bad.any():
        rows = np.flatnonzero(bad)
        more = f" ({rows.size} rows in all)" if rows.size > 1 else ""
        value = values[rows[0]]
        value = value.item() if isinstance(value, np.generic) else value
        raise ManifestError(file, f"{expected}, got {value!r}{more}", row=int(rows[0]), column=column)


def check_labels(values: Sequence[object] | np.ndarray, file: str = "<arrays>") -> np.ndarray:
    """Labels as int8; anything but 0/1 (or a null) is an error naming its row."""
    raw = np.asarray(values)
    if raw.dtype.kind in "biuf":
        numeric = raw.astype(np.float64)
    else:
        numeric = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    _first_bad(~np.isin(numeric, (0.0, 1.0)), raw, file, "label", "label must be 0 (real) or 1 (fake)")
    return numeric.astype(np.int8)


def check_scores(values: Sequence[object] | np.ndarray, file: str = "<arrays>") -> np.ndarray:
    """Scores as float64 probabilities; NaN, non-numbers and values outside [0, 1] are errors."""
    raw = np.asarray(values)
    if raw.dtype.kind in "biuf":
        numeric = raw.astype(np.float64)
    else:
        numeric = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~((numeric >= 0.0) & (numeric <= 1.0))  # NaN fails both comparisons
    _first_bad(bad, raw, file, "score", "score must be a probability of fake in [0, 1]")
    return numeric


@dataclass(frozen=True)
class Predictions:
    """Checked predictions: arrays of equal length, cells built from the taxonomy, a source per row."""

    labels: np.ndarray  # int8
    scores: np.ndarray  # float64
    cells: Cells
    source_codes: np.ndarray  # int32 index into source_names
    source_names: tuple[str, ...]  # in order of first appearance
    file: str
    video: np.ndarray | None = None  # object array of video ids (None where a row has none)

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, rows: np.ndarray) -> Predictions:
        cells = Cells(code=self.cells.code[rows], cell_names=self.cells.cell_names, groupings=self.cells.groupings)
        video = None if self.video is None else self.video[rows]
        return Predictions(
            self.labels[rows], self.scores[rows], cells, self.source_codes[rows], self.source_names, self.file, video
        )

    def of_source(self, name: str) -> Predictions:
        return self.subset(np.flatnonzero(self.source_codes == self.source_names.index(name)))


def source_codes(
    values: Sequence[object] | np.ndarray | pa.Array | pa.ChunkedArray, file: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Dataset names as codes (names in order of first appearance); an empty or null name is an error."""
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(values, dtype=object))
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    bad = pc.or_kleene(pc.is_null(array), pc.equal(pc.utf8_length(array), 0)).fill_null(True)
    if pc.any(bad).as_py():
        row = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
        raise ManifestError(
            file, f"source must be a dataset name, got {array[row].as_py()!r}", row=row, column="source"
        )
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32), tuple(encoded.dictionary.to_pylist())


def check_predictions(
    labels: Sequence[object] | np.ndarray,
    scores: Sequence[object] | np.ndarray,
    genders: Sequence[object] | np.ndarray | pa.ChunkedArray,
    races: Sequence[object] | np.ndarray | pa.ChunkedArray,
    taxonomy: Taxonomy,
    file: str = "<arrays>",
    sources: Sequence[object] | np.ndarray | pa.ChunkedArray | None = None,
    videos: Sequence[object] | np.ndarray | None = None,
) -> Predictions:
    """Validate arrays (the library entry and the file reader share this).

    Without `sources` every row is tagged with the file's stem (a file `celebdf.parquet` is `celebdf`).
    """
    lengths = {"label": len(labels), "score": len(scores), "gender": len(genders), "race": len(races)}
    if len(set(lengths.values())) != 1:
        raise ManifestError(file, f"columns differ in length: {lengths}")
    if lengths["label"] == 0:
        raise ManifestError(file, "no predictions (0 rows)")
    checked_labels = check_labels(labels, file)
    checked_scores = check_scores(scores, file)
    cells = make_cells(genders, races, taxonomy, file)
    if sources is None:
        codes, names = np.zeros(lengths["label"], dtype=np.int32), (Path(file).stem,)
    else:
        codes, names = source_codes(sources, file)
    video = None
    if videos is not None:
        if len(videos) != lengths["label"]:
            raise ManifestError(file, f"video has {len(videos)} rows, label has {lengths['label']}", column="video")
        video = pd.Series(np.asarray(videos, dtype=object)).where(lambda v: v.notna(), None).to_numpy(dtype=object)
    return Predictions(checked_labels, checked_scores, cells, codes, names, file, video)


def _parquet(file: str, read: Callable[[str], T]) -> T:
    """`read(file)` (a schema or a table) for a predictions file, or a `ManifestError` naming it."""
    if not Path(file).is_file():
        raise ManifestError(file, "predictions file not found")
    try:
        return read(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(file, f"not a readable Parquet file ({exc})") from None


def read_predictions(path: str | os.PathLike[str], taxonomy: Taxonomy) -> Predictions:
    """Read and check one predictions file; a missing `source` column tags every row with the file's stem."""
    file = str(path)
    names = _parquet(file, pq.read_schema).names
    for column in REQUIRED_COLUMNS:
        if column not in names:
            raise ManifestError(file, f"required column is missing (have {names})", column=column)
    columns = [c for c in (*REQUIRED_COLUMNS, "source", "video") if c in names]
    table = _parquet(file, lambda f: pq.read_table(f, columns=columns))

    def column(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False)

    return check_predictions(
        column("label"),
        column("score"),
        table.column("gender"),
        table.column("race"),
        taxonomy,
        file,
        sources=table.column("source") if "source" in columns else None,
        videos=column("video") if "video" in columns else None,
    )


def read_scores_for(
    path: str | os.PathLike[str], dataset: pd.DataFrame, taxonomy: Taxonomy
) -> Predictions:
    """Scores (`id`, `score`) of one file, with labels, cells and sources taken from `dataset` by id.

    `dataset` is what `fairforge.resolve.resolve_dataset` gives for a manifest, a release folder or
    a Hub id: the ground truth stays with the data, so a detector's output needs only ids and scores.
    """
    file = str(path)
    table = _parquet(file, pq.read_table)
    for name in ("id", "score"):
        if name not in table.column_names:
            raise ManifestError(file, f"required column is missing with --dataset (have {table.column_names})", column=name)
    ids = pd.Series(table.column("id").to_pylist(), dtype=object)
    truth = dataset.drop_duplicates("id").set_index("id")
    missing = ~ids.isin(truth.index)
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise ManifestError(
            file, f"id {ids.iat[row]!r} is not in the dataset ({int(missing.sum())} rows in all)", row=row, column="id"
        )
    rows = truth.loc[ids.to_numpy()]
    return check_predictions(
        rows["label"].to_numpy(),
        table.column("score").to_numpy(zero_copy_only=False),
        rows["gender"].fillna("unknown").to_numpy(dtype=object),
        rows["race"].fillna("unknown").to_numpy(dtype=object),
        taxonomy,
        file,
        sources=rows["source"].to_numpy(dtype=object),
    )


def concat_predictions(parts: Sequence[Predictions]) -> Predictions:
    """Several checked files as one set (the pooled evaluation); every row keeps its source."""
    first = parts[0]
    names = tuple(dict.fromkeys(name for p in parts for name in p.source_names))
    codes = [np.array([names.index(n) for n in p.source_names], dtype=np.int32)[p.source_codes] for p in parts]
    cells = Cells(
        code=np.concatenate([p.cells.code for p in parts]),
        cell_names=first.cells.cell_names,
        groupings=first.cells.groupings,
    )
    video = None
    if any(p.video is not None for p in parts):
        video = np.concatenate([np.full(len(p), None, dtype=object) if p.video is None else p.video for p in parts])
    return Predictions(
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.scores for p in parts]),
        cells,
        np.concatenate(codes),
        names,
        ", ".join(p.file for p in parts),
        video,
    )
