"""One way in for data: a manifest, a release folder or a Hub dataset id, all read as a manifest.

`fairforge train`, `fairforge train predict` and `fairforge evaluate` take their data through
`resolve_dataset`, so what `fairforge release` writes (locally, or pushed to the Hub) is what they
read, with no conversion step for the user:

- a manifest file, or a folder holding `manifest.parquet`: read and validated as it is;
- a release folder (`README.md` + `data/<split>-*.parquet`, the Hub layout) or a Hub dataset id
  (`owner/name`): loaded with `datasets.load_dataset`, its ClassLabels turned back into names, and
  its embedded images written once under `$FAIRFORGE_CACHE/datasets/<digest>/` beside a manifest,
  so training reads files exactly as it reads any other manifest. The digest covers the spec and
  the dataset's fingerprints: a changed release gets a new folder, an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from .errors import ManifestError
from .manifest import FIELDS, MANIFEST_NAME, read_manifest, write_manifest
from .taxonomy import DEFAULT_TAXONOMY, Taxonomy

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CLASS_COLUMNS = ("gender", "race", "age", "method")


def cache_root() -> Path:
    """`$FAIRFORGE_CACHE/datasets` (default `~/.cache/fairforge/datasets`)."""
    base = os.environ.get("FAIRFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fairforge")
    return Path(base) / "datasets"


def is_release(folder: Path) -> bool:
    """A folder in the Hub layout that `load_dataset(folder)` reads (a release)."""
    return (folder / "README.md").is_file() and any((folder / "data").glob("*.parquet"))


def kind_of(spec: str) -> str:
    """`manifest`, `release` or `hub`; anything else is an error naming what was expected."""
    path = Path(spec)
    if path.is_file() or (path.is_dir() and (path / MANIFEST_NAME).is_file()) or path.suffix == ".parquet":
        return "manifest"  # a missing .parquet file is named as such by `read_manifest`
    if path.is_dir() and is_release(path):
        return "release"
    if not path.exists() and HUB_ID.match(spec):
        return "hub"
    raise ManifestError(
        spec,
        "not a manifest (a .parquet file or a folder holding manifest.parquet), a release folder (README.md and "
        "data/*.parquet) or a Hub dataset id (owner/name)",
    )


def resolve_dataset(
    spec: str | os.PathLike[str], taxonomy: Taxonomy = DEFAULT_TAXONOMY, cache: Path | None = None
) -> pd.DataFrame:
    """The manifest `spec` names (see the module docstring); `attrs["root"]`/`["file"]` as `read_manifest`."""
    text = str(spec)
    kind = kind_of(text)
    if kind == "manifest":
        return read_manifest(text, taxonomy)
    from datasets import load_dataset

    try:
        dataset = load_dataset(text)
    except Exception as exc:  # noqa: BLE001 - the datasets/hub error types vary; the message names the spec
        raise ManifestError(text, f"datasets.load_dataset could not read it ({type(exc).__name__}: {exc})") from None
    fingerprint = "|".join(f"{name}:{split._fingerprint}" for name, split in sorted(dataset.items()))
    digest = hashlib.sha256(f"{os.path.abspath(text) if kind == 'release' else text}|{fingerprint}".encode())
    folder = (cache or cache_root()) / digest.hexdigest()[:20]
    if not (folder / MANIFEST_NAME).is_file():
        write_manifest(dataset_rows(dataset, folder, text), folder / MANIFEST_NAME, taxonomy)
    return read_manifest(folder, taxonomy)


def _image_name(split: str, id_: str, original: str | None) -> str:
    suffix = PurePosixPath(original).suffix.lower() if original else ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", id_)[-80:]
    return f"images/{split}/{stem}-{hashlib.sha1(id_.encode()).hexdigest()[:8]}{suffix or '.png'}"


def dataset_rows(dataset, folder: Path, spec: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Manifest rows of a DatasetDict, its images written under `folder` (each atomically)."""
    from datasets import ClassLabel
    from datasets import Image as ImageFeature

    from .atomic import atomic_open

    frames = []
    for split_name, split in dataset.items():
        if "image" not in split.features or "id" not in split.features:
            raise ManifestError(spec, f"split {split_name!r} has no `image` and `id` columns (not a fairforge release)")
        split = split.cast_column("image", ImageFeature(decode=False))
        names = {c: f.names for c, f in split.features.items() if isinstance(f, ClassLabel) and c != "label"}
        frame = split.to_pandas()
        images = frame.pop("image")
        for column, vocab in names.items():
            frame[column] = [None if v is None or pd.isna(v) else vocab[int(v)] for v in frame[column]]
        paths = []
        for id_, image in zip(frame["id"].astype(str), images):
            if not isinstance(image, dict) or not image.get("bytes"):
                raise ManifestError(spec, f"row {id_!r} of split {split_name!r} has no embedded image bytes")
            rel = _image_name(split_name, id_, image.get("path"))
            target = folder / rel
            if not target.is_file():
                with atomic_open(target, "wb") as handle:
                    handle.write(image["bytes"])
            paths.append(rel)
        frame["path"] = paths
        if "split" not in frame.columns or frame["split"].isna().all():
            frame["split"] = split_name
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    known = [c for c in FIELDS if c in rows.columns]
    return rows[known + [c for c in rows.columns if c not in FIELDS]]


__all__ = ["cache_root", "dataset_rows", "is_release", "kind_of", "resolve_dataset"]
