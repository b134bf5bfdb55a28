"""A Hugging Face `imagefolder` -> a manifest.

The convention (`datasets.load_dataset("imagefolder", data_dir=...)`): images under a folder and a
`metadata.csv` or `metadata.jsonl` whose `file_name` column names each image relative to the
metadata file's folder. Metadata files may sit at the root and in its immediate subfolders; a
subfolder named after a split (`train`, `val`/`validation`, `test`) gives its rows that split
unless a `split` column says otherwise.

Columns named like manifest columns are imported (`label`, `gender`, `race`, `age`, `method`,
`source`, `domain`, `split`, `identity`, `src_identity`, `id`, provenance and quality fields; person
ids are prefixed with the source, `p7` -> `mydata/p7`, so two datasets' persons never collide);
attribute values are
mapped onto the taxonomy by name (`Male` -> `male`, `East Asian` -> `Asian`), so a FairFace-style
annotation imports as is. Other columns are ignored (and named in the log).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from fairforge.errors import ManifestError
from fairforge.manifest import FIELDS, SPLITS
from fairforge.taxonomy import UNKNOWN

from .common import ImportOptions, Problems, finish, read_table_file, relative_paths, require_columns

log = logging.getLogger(__name__)

METADATA_NAMES: tuple[str, ...] = ("metadata.csv", "metadata.jsonl")
#: folder or `split` value -> manifest split
SPLIT_NAMES: dict[str, str] = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
}
#: label spellings -> 0/1
LABEL_NAMES: dict[str, int] = {"0": 0, "1": 1, "real": 0, "fake": 1}
#: columns the import computes itself; metadata values for them are ignored
COMPUTED: tuple[str, ...] = ("path", "width", "height", "sha256")


_BAD = object()


def _integer(text: str) -> int | object:
    """An integer exactly (seeds exceed float precision), or `_BAD`."""
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return _BAD
        return int(number) if number.is_integer() else _BAD


def _float(text: str) -> float | object:
    try:
        return float(text)
    except ValueError:
        return _BAD


def find_metadata(root: Path) -> list[tuple[Path, str | None]]:
    """Metadata files at `root` and in its immediate subfolders, with the split a folder implies."""
    found: list[tuple[Path, str | None]] = []
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for folder in folders:
        files = [folder / name for name in METADATA_NAMES if (folder / name).is_file()]
        if len(files) > 1:
            raise ManifestError(str(folder), f"holds both {METADATA_NAMES[0]} and {METADATA_NAMES[1]}; keep one")
        if files:
            found.append((files[0], None if folder == root else SPLIT_NAMES.get(folder.name.lower())))
    if not found:
        raise ManifestError(str(root), f"no {' or '.join(METADATA_NAMES)} at the root or in its subfolders")
    return found


def _read_all(root: Path) -> pd.DataFrame:
    """All metadata rows, with `_file`, `_row` (1-based), `_folder` and `_split` bookkeeping columns."""
    parts = []
    for file, split in find_metadata(root):
        table = read_table_file(file)
        require_columns(table, ["file_name", "label"], str(file))
        parts.append(
            table.assign(
                _file=str(file),
                _row=np.arange(1, len(table) + 1),
                _folder=file.parent.relative_to(root).as_posix(),
                _split=split,
            )
        )
    return pd.concat(parts, ignore_index=True).fillna("")


def _present(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Rows where `column` exists and is non-empty."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return (frame[column].astype(str).str.strip() != "").to_numpy()


def import_imagefolder(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    source: str | None = None,
    options: ImportOptions = ImportOptions(),
) -> Path:
    """Import an imagefolder into `out/manifest.parquet` (`out` may be `root` itself).

    `source` fills the `source` column where the metadata has none (default: the folder's name).
    Returns the manifest path.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(str(root), "--root is not a folder")
    source = source or root.resolve().name
    frame = _read_all(root)
    files = frame["_file"].tolist()
    problems = Problems(str(root), len(frame), options.skip_bad, row_numbers=frame["_row"].to_numpy(), row_files=files)
    ignored = [
        c for c in frame.columns if not c.startswith("_") and c != "file_name" and (c not in FIELDS or c in COMPUTED)
    ]
    if ignored:
        log.info("ignoring metadata column(s) %s (not manifest columns, or computed by the import)", ignored)

    rows = pd.DataFrame(index=frame.index)
    for column in FIELDS:
        if column in frame.columns and column not in COMPUTED:
            values = frame[column].astype(str).str.strip()
            rows[column] = values.astype(object).where(values != "", None)

    label = rows["label"].str.lower().map(LABEL_NAMES)
    problems.add(
        label.isna().to_numpy(), "label", lambda i: f"label must be 0/1 or real/fake, got {frame['label'].iat[i]!r}"
    )
    rows["label"] = label.fillna(0).astype(np.int8)

    for attribute in ("gender", "race", "age"):
        if attribute not in rows.columns:
            rows[attribute] = UNKNOWN
            continue
        raw = rows[attribute].fillna(UNKNOWN)
        mapped = np.array([options.taxonomy.map_label(attribute, v) for v in raw], dtype=object)
        bad = (mapped == UNKNOWN) & (raw.str.lower() != UNKNOWN).to_numpy()
        allowed = list(options.taxonomy.allowed(attribute))
        problems.add(
            bad, attribute, lambda i, a=attribute, r=raw, v=allowed: f"{r.iat[i]!r} is not a {a} of the taxonomy {v}"
        )
        rows[attribute] = mapped

    split = rows["split"].str.lower().map(SPLIT_NAMES) if "split" in rows.columns else pd.Series(None, index=rows.index)
    problems.add(
        (_present(frame, "split") & split.isna()).to_numpy(),
        "split",
        lambda i: f"split must be one of {list(SPLITS)} (or validation/valid/dev), got {frame['split'].iat[i]!r}",
    )
    rows["split"] = split.where(split.notna(), frame["_split"].replace("", None))

    for column, dtype in FIELDS.items():
        if column in rows.columns and column != "label" and (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
            parse = _integer if pa.types.is_integer(dtype) else _float
            values = [None if v is None else parse(v) for v in rows[column]]
            bad = np.array([v is _BAD for v in values], dtype=bool)
            problems.add(bad, column, lambda i, c=column: f"expected {FIELDS[c]}, got {frame[c].iat[i]!r}")
            rows[column] = pd.Series([None if v is _BAD else v for v in values], index=rows.index, dtype=object)

    named = frame["_folder"].map(lambda f: "" if f == "." else f + "/") + frame["file_name"]
    rel = relative_paths(named.tolist(), root, problems, "file_name")
    if "method" not in rows.columns:
        rows["method"] = None
    rows["method"] = rows["method"].where(rows["method"].notna(), np.where(rows["label"] == 0, "real", UNKNOWN))
    if "source" not in rows.columns:
        rows["source"] = None
    rows["source"] = rows["source"].fillna(source)
    if "domain" not in rows.columns:
        rows["domain"] = None
    rows["domain"] = rows["domain"].where(rows["domain"].notna(), rows["source"])
    for column in ("identity", "src_identity"):
        if column in rows.columns:
            rows[column] = [
                None if v is None or pd.isna(v) or v == "" else (v if str(v).startswith(f"{s}/") else f"{s}/{v}")
                for s, v in zip(rows["source"], rows[column])
            ]
    derived = pd.Series([None if p is None else f"{s}/{p}" for s, p in zip(rows["source"], rel)], index=rows.index)
    rows["id"] = rows["id"].where(rows["id"].notna(), derived) if "id" in rows.columns else derived
    dup = rows["id"].duplicated(keep="first") & rows["id"].notna() & pd.Series(problems.good)
    problems.add(dup.to_numpy(), "id", lambda i: f"duplicate id {rows['id'].iat[i]!r}")
    problems.check()
    return finish(
        rows,
        rel,
        original=frame.drop(columns=["_row", "_folder", "_split"]).rename(columns={"_file": "metadata_file"}),
        problems=problems,
        images_root=root,
        out=out,
        options=options,
        path_column="file_name",
    )
