"""The manifest: the one data contract between stages (docs/manifest.md).

A manifest is a Parquet table, one row per image, with the images as files beside it (paths relative
to the manifest's folder). Every stage reads manifests through `read_manifest` (which validates and
names the file, row and column of anything wrong) and writes them through `write_manifest` (which
validates first and writes atomically), so a bad row is caught at the stage boundary where it
entered, not three stages later as a wrong fairness number.

Resumable jobs append rows through a `ShardWriter` (each flush is one small Parquet file written
atomically) and `merge_shards` joins them into `manifest.parquet`; a restart asks `completed_ids`
what is already done.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_open
from .errors import ManifestError
from .splits import SPLITS, normalize_splits
from .taxonomy import DEFAULT_TAXONOMY, UNKNOWN, Taxonomy

MANIFEST_NAME = "manifest.parquet"
SHARD_DIR = "shards"

#: Column -> Arrow type, in the order manifests are written.
FIELDS: dict[str, pa.DataType] = {
    # identity and label
    "id": pa.string(),
    "path": pa.string(),
    "label": pa.int8(),
    "method": pa.string(),
    "source": pa.string(),
    "domain": pa.string(),
    "split": pa.string(),
    "identity": pa.string(),
    # intended (generated) or annotated (real) attributes
    "gender": pa.string(),
    "race": pa.string(),
    "age": pa.string(),
    # the attribute classifier's verdict (balance stage)
    "pred_gender": pa.string(),
    "pred_race": pa.string(),
    "pred_age": pa.string(),
    "pred_gender_conf": pa.float32(),
    "pred_race_conf": pa.float32(),
    "pred_age_conf": pa.float32(),
    # provenance: enough to regenerate the image with the same software
    "generator": pa.string(),
    "seed": pa.int64(),
    "prompt": pa.string(),
    "negative_prompt": pa.string(),
    "steps": pa.int32(),
    "guidance": pa.float32(),
    "src_id": pa.string(),
    "dst_id": pa.string(),
    # for fakes: the person of the source face (the target's person is `identity`)
    "src_identity": pa.string(),
    # the file as written
    "width": pa.int32(),
    "height": pa.int32(),
    "sha256": pa.string(),
    # quality
    "face_score": pa.float32(),
    "sharpness": pa.float32(),
    "phash": pa.string(),
}
SCHEMA = pa.schema([pa.field(name, dtype) for name, dtype in FIELDS.items()])
REQUIRED: tuple[str, ...] = ("id", "path", "label", "method", "source")
ATTRIBUTES: tuple[str, ...] = ("gender", "race", "age")


# ------------------------------------------------------------------------------------------------
# conforming rows to the schema
# ------------------------------------------------------------------------------------------------
def to_frame(rows: pd.DataFrame | Iterable[Mapping[str, Any]] | pa.Table) -> pd.DataFrame:
    """Rows as a DataFrame with every schema column present (missing ones null), schema first.

    Extra columns are kept after the schema's: a stage may carry its own bookkeeping columns.
    """
    if isinstance(rows, pa.Table):
        # int64 (seeds) as pandas' nullable Int64: a float64 column would round seeds above 2**53
        frame = rows.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    elif isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    else:
        records = list(rows)
        frame = pd.DataFrame(records)
        for name in frame.columns:
            if FIELDS.get(name) == pa.int64() and frame[name].dtype.kind == "f":
                # None made pandas pick float64, which rounds seeds above 2**53: take the ints as given
                try:
                    frame[name] = pd.array([r.get(name) for r in records], dtype="Int64")
                except (TypeError, ValueError):
                    pass  # not all integers: validation names the bad row
    for name in FIELDS:
        if name not in frame.columns:
            frame[name] = None
    # `val` (and `valid`, `dev`) is read as `validation`, the name the Hub and `datasets` use
    frame["split"] = normalize_splits(frame["split"])
    extra = [c for c in frame.columns if c not in FIELDS]
    return frame[list(FIELDS) + extra].reset_index(drop=True)


def to_table(rows: pd.DataFrame | Iterable[Mapping[str, Any]] | pa.Table, file: str = "<rows>") -> pa.Table:
    """Rows as an Arrow table of the manifest schema (plus any extra columns)."""
    frame = to_frame(rows)
    arrays = []
    fields = []
    for name in frame.columns:
        values = frame[name]
        dtype = FIELDS.get(name)
        try:
            if dtype is None:
                array = pa.array(values.tolist(), from_pandas=True)
            else:
                array = pa.array(_clean(values, dtype), type=dtype, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError) as exc:
            row = _first_bad_row(values, dtype)
            raise ManifestError(
                file, f"expected {dtype}, got {values.iloc[row]!r} ({exc})", row=row, column=name
            ) from None
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _clean(values: pd.Series, dtype: pa.DataType) -> list[Any]:
    out = values.astype(object).where(values.notna(), None).tolist()
    if pa.types.is_string(dtype):
        return [None if v is None else (v if isinstance(v, str) else _to_str(v)) for v in out]
    if pa.types.is_integer(dtype):
        return [None if v is None else _to_int(v) for v in out]
    return out


def _to_str(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, float | np.floating):
        if not float(value).is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    return int(value)


def _first_bad_row(values: pd.Series, dtype: pa.DataType | None) -> int:
    for i, value in enumerate(values.tolist()):
        try:
            if dtype is None or value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            pa.array(_clean(pd.Series([value], dtype=object), dtype), type=dtype)
        except Exception:  # noqa: BLE001 - we are locating the row the conversion above rejected
            return i
    return 0


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def check_relative_path(path: str) -> str | None:
    """Why `path` may not be a manifest path, or None when it is fine.

    Paths are relative POSIX paths that stay inside the manifest's folder, so a manifest moves with
    its folder and never reaches outside it.
    """
    if not isinstance(path, str) or not path:
        return "must be a non-empty relative path"
    if "\\" in path:
        return f"must use '/' separators (POSIX), got {path!r}"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or "://" in path:
        return f"must be relative to the manifest's folder, got absolute {path!r}"
    if ".." in PurePosixPath(path).parts:
        return f"may not leave the manifest's folder ('..'), got {path!r}"
    return None


def row_problems(
    frame: pd.DataFrame,
    taxonomy: Taxonomy,
    root: Path | None = None,
    check_files: bool = False,
) -> list[tuple[int, str, str]]:
    """Every problem as (row, column, message), rows 0-based, in row order.

    Vectorized per column; file existence is checked only when asked (it touches the disk).
    """
    problems: list[tuple[int, str, str]] = []

    def add(mask: np.ndarray, column: str, message: Callable[[Any], str]) -> None:
        for row in np.flatnonzero(mask):
            value = frame[column].iloc[row]
            problems.append((int(row), column, message(value.item() if isinstance(value, np.generic) else value)))

    for column in REQUIRED:
        if column not in frame.columns:
            problems.append((-1, column, "required column is missing"))
    if any(row < 0 for row, _, _ in problems):
        return problems
    for column in ("id", "path", "method", "source"):
        values = frame[column]
        missing = values.isna().to_numpy() | (values.astype(str).str.len() == 0).to_numpy()
        add(missing, column, lambda v, c=column: f"{c} is required, got {v!r}")
    ids = frame["id"]
    dup = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
    add(dup, "id", lambda v: f"duplicate id {v!r}")
    paths = frame["path"]
    bad_path = np.array(
        [
            p is not None and not (isinstance(p, float) and np.isnan(p)) and check_relative_path(p) is not None
            for p in paths.tolist()
        ],
        dtype=bool,
    )
    add(bad_path, "path", lambda v: f"path {check_relative_path(v)}")
    dup_path = paths.duplicated(keep="first").to_numpy() & paths.notna().to_numpy()
    add(dup_path, "path", lambda v: f"duplicate path {v!r}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad_label = ~labels.isin([0, 1]).to_numpy()
    add(bad_label, "label", lambda v: f"label must be 0 or 1, got {v!r}")
    if "split" in frame.columns:
        split = frame["split"]
        bad_split = split.notna().to_numpy() & ~split.isin(SPLITS).to_numpy()
        add(bad_split, "split", lambda v: f"split must be one of {list(SPLITS)}, got {v!r}")
    for attribute in ATTRIBUTES:
        for column in (attribute, f"pred_{attribute}"):
            if column not in frame.columns:
                continue
            values = frame[column]
            allowed = taxonomy.allowed(attribute)
            bad = values.notna().to_numpy() & ~values.isin(allowed).to_numpy()
            add(bad, column, lambda v, a=allowed, c=column: f"{c} must be one of {list(a)}, got {v!r}")
        conf = f"pred_{attribute}_conf"
        if conf in frame.columns:
            values = pd.to_numeric(frame[conf], errors="coerce")
            bad = frame[conf].notna().to_numpy() & ~((values >= 0) & (values <= 1)).to_numpy()
            add(bad, conf, lambda v, c=conf: f"{c} must be a probability in [0, 1], got {v!r}")
    if check_files and root is not None:
        exists = np.array(
            [isinstance(p, str) and check_relative_path(p) is None and (root / p).is_file() for p in paths.tolist()],
            dtype=bool,
        )
        add(~exists & ~bad_path, "path", lambda v: f"image file {v!r} does not exist under {root}")
    problems.sort(key=lambda p: p[0])
    return problems


def validate_frame(
    frame: pd.DataFrame,
    file: str,
    taxonomy: Taxonomy,
    root: Path | None = None,
    check_files: bool = False,
) -> None:
    """Raise `ManifestError` naming file, row and column of the first problem."""
    problems = row_problems(frame, taxonomy, root=root, check_files=check_files)
    if problems:
        row, column, message = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ManifestError(file, message + more, row=None if row < 0 else row, column=column)


# ------------------------------------------------------------------------------------------------
# reading and writing
# ------------------------------------------------------------------------------------------------
def resolve_manifest_path(path: str | os.PathLike[str]) -> Path:
    """A manifest file from a file path or a folder holding `manifest.parquet`."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(
            str(p), "manifest not found (expected a .parquet file or a folder holding manifest.parquet)"
        )
    return p


def read_manifest(
    path: str | os.PathLike[str],
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
    check_files: bool = False,
    validate: bool = True,
) -> pd.DataFrame:
    """Read and validate a manifest; `df.attrs["root"]` is the folder its paths are relative to.

    The default taxonomy is for reading a manifest by hand; every stage passes its configured one.
    """
    file = resolve_manifest_path(path)
    try:
        table = pq.read_table(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(str(file), f"not a readable Parquet file ({exc})") from None
    for column in REQUIRED:
        if column not in table.column_names:
            raise ManifestError(str(file), "required column is missing", column=column)
    frame = to_frame(table)
    if validate:
        validate_frame(frame, str(file), taxonomy, root=file.parent, check_files=check_files)
    frame.attrs["root"] = str(file.parent)
    frame.attrs["file"] = str(file)
    return frame


def write_manifest(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
    check_files: bool = False,
) -> Path:
    """Validate, then write atomically. Returns the file written."""
    target = Path(path)
    if target.suffix != ".parquet":
        target = target / MANIFEST_NAME
    frame = to_frame(rows)
    validate_frame(frame, str(target), taxonomy, root=target.parent, check_files=check_files)
    table = to_table(frame, str(target))
    _write_table(table, target)
    return target


def _write_table(table: pa.Table, target: Path) -> None:
    with atomic_open(target, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def image_path(manifest: pd.DataFrame, row: int | Mapping[str, Any]) -> Path:
    """The absolute path of a row's image."""
    record = manifest.iloc[row] if isinstance(row, int) else row
    return Path(manifest.attrs["root"]) / str(record["path"])


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def concat_manifests(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Join manifests that live in different folders: paths are rebased on the first's root."""
    if not frames:
        return to_frame([])
    base = Path(frames[0].attrs.get("root", "."))
    parts = []
    for frame in frames:
        root = Path(frame.attrs.get("root", base))
        part = frame.copy()
        if root != base:
            part["path"] = [os.path.relpath(root / p, base).replace(os.sep, "/") for p in part["path"]]
        parts.append(part)
    out = to_frame(pd.concat(parts, ignore_index=True))
    out.attrs["root"] = str(base)
    return out


# ------------------------------------------------------------------------------------------------
# resumable jobs: shards and merge
# ------------------------------------------------------------------------------------------------
class ShardWriter:
    """Append rows to a folder as small Parquet shards, each written atomically.

    A job calls `add` per finished image (after the image itself is on disk) and `flush` every
    few rows; a kill loses at most the unflushed rows, whose images a restart overwrites.
    Shard names carry the writer's `name` (a rank) and a sequence number, so ranks never collide.
    """

    def __init__(self, folder: str | os.PathLike[str], name: str = "rank0", flush_every: int = 64) -> None:
        self.folder = Path(folder) / SHARD_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.flush_every = flush_every
        self._rows: list[dict[str, Any]] = []
        existing = sorted(self.folder.glob(f"{name}-*.parquet"))
        self._seq = 1 + max((int(p.stem.rsplit("-", 1)[1]) for p in existing), default=-1)

    def add(self, row: Mapping[str, Any]) -> None:
        self._rows.append(dict(row))
        if len(self._rows) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        table = to_table(self._rows, str(self.folder / f"{self.name}-{self._seq:06d}.parquet"))
        _write_table(table, self.folder / f"{self.name}-{self._seq:06d}.parquet")
        self._seq += 1
        self._rows = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def _read_shards(folder: Path) -> pd.DataFrame:
    shard_dir = folder / SHARD_DIR
    files = sorted(shard_dir.glob("*.parquet")) if shard_dir.is_dir() else []
    frames = [to_frame(pq.read_table(f)) for f in files]
    return pd.concat(frames, ignore_index=True) if frames else to_frame([])


def recorded_rows(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """Every row recorded in the folder (its merged manifest, then unmerged shards), one per id.

    What a running or restarted job has made so far; the first row written for an id wins, as in
    `merge_shards`.
    """
    folder = Path(folder)
    parts = [to_frame(pq.read_table(folder / MANIFEST_NAME))] if (folder / MANIFEST_NAME).is_file() else []
    parts.append(_read_shards(folder))
    return to_frame(pd.concat(parts, ignore_index=True)).drop_duplicates("id", keep="first")


def completed_ids(folder: str | os.PathLike[str]) -> set[str]:
    """Ids already recorded in the folder's manifest or shards: what a restarted job skips."""
    return set(recorded_rows(folder)["id"].dropna())


def merge_shards(
    folder: str | os.PathLike[str],
    order: Sequence[str] | None = None,
    *,
    taxonomy: Taxonomy,
) -> Path:
    """Join `manifest.parquet` and every shard into one manifest, then remove the shards.

    Idempotent: rows are de-duplicated by id (the first written wins), so a merge that was killed
    after writing the manifest but before removing the shards gives the same result when rerun.
    `order` (ids, e.g. the plan's) fixes the row order so the merged manifest does not depend on
    which rank finished first.
    """
    folder = Path(folder)
    parts = []
    if (folder / MANIFEST_NAME).is_file():
        parts.append(to_frame(pq.read_table(folder / MANIFEST_NAME)))
    parts.append(_read_shards(folder))
    frame = to_frame(pd.concat(parts, ignore_index=True)).drop_duplicates("id", keep="first")
    if order is not None:
        rank = {id_: i for i, id_ in enumerate(order)}
        frame = frame.assign(_order=frame["id"].map(rank).fillna(len(rank)).astype(int))
        frame = frame.sort_values(["_order", "id"], kind="stable").drop(columns="_order")
    target = write_manifest(frame.reset_index(drop=True), folder / MANIFEST_NAME, taxonomy)
    shard_dir = folder / SHARD_DIR
    if shard_dir.is_dir():
        for shard in shard_dir.glob("*.parquet"):
            shard.unlink()
        try:
            shard_dir.rmdir()
        except OSError:
            pass
    return target


__all__ = [
    "ATTRIBUTES",
    "FIELDS",
    "MANIFEST_NAME",
    "REQUIRED",
    "SCHEMA",
    "SPLITS",
    "UNKNOWN",
    "ShardWriter",
    "check_relative_path",
    "completed_ids",
    "concat_manifests",
    "file_sha256",
    "image_path",
    "merge_shards",
    "read_manifest",
    "row_problems",
    "to_frame",
    "to_table",
    "validate_frame",
    "write_manifest",
]
