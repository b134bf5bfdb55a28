"""`fairforge release`: the balanced set as a Hugging Face dataset, in the Hub's own layout.

RELEASE_DIR holds exactly what is published: `README.md` (the dataset card) and
`data/<split>-XXXXX-of-YYYYY.parquet` shards whose schema carries the `datasets` Features (an
`Image()` column with the image bytes embedded, ClassLabels for label / gender / race / age /
method, every manifest column), so `load_dataset(RELEASE_DIR)` reads the same thing the Hub would
serve. `RELEASE_DIR/arrow/` is the `save_to_disk` copy for fast local use; it is not pushed.

What goes in: what fairforge made. Imported real rows (FF++, Celeb-DF, ... under their own
licences) are not redistributed unless `include_real` is set: `references/real.parquet` lists
them by id, source, split and person, so a user holding those datasets can rebuild the exact mix.
Splits are `train`, `validation`, `test`; the set is refused if a person spans two splits.

Each shard records a digest of the rows it holds in its Parquet metadata: a rerun (after a kill,
or for a large set after a change) rewrites only the shards whose rows changed, and removes shards
no longer part of the release.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from fairforge.atomic import atomic_open, atomic_write_text
from fairforge.config.balance import ReleaseConfig
from fairforge.errors import ConfigError, FairforgeError, ManifestError
from fairforge.images import check_image_bytes
from fairforge.manifest import FIELDS, SPLITS, read_manifest
from fairforge.paths import allowed_roots, claim_output, resolve_inside
from fairforge.taxonomy import UNKNOWN, Taxonomy

from .card import REPO_ID, card_body, card_metadata, components, render_card
from .leaks import check_no_leaks
from .split import SYNTHETIC_SOURCE

if TYPE_CHECKING:
    from datasets import Features

log = logging.getLogger(__name__)

DATA = "data"
ARROW = "arrow"
CARD = "README.md"
DIGEST_KEY = b"fairforge_shard_digest"
#: Scratch folders (the `save_to_disk` build) live inside RELEASE_DIR under this prefix; a run
#: killed mid-save leaves one, and the next run sweeps it.
SCRATCH_PREFIX = ".scratch-"
CLASS_COLUMNS = ("label", "gender", "race", "age", "method")
REFERENCES = "references/real.parquet"
#: what `references/real.parquet` keeps of each imported row (no image, no path into the user's disk)
REFERENCE_COLUMNS = ("id", "source", "split", "label", "method", "identity", "src_identity", "gender", "race", "age")
LABEL_NAMES = ["real", "fake"]


@dataclass
class ReleaseResult:
    release_dir: Path
    split_sizes: dict[str, int]
    files: list[str]  # paths relative to release_dir that a push uploads
    referenced: int = 0  # imported rows listed in references/real.parquet instead of included


def build_features(manifest: pd.DataFrame, taxonomy: Taxonomy) -> Features:
    """Explicit Features: the image, ClassLabels for the categorical columns, every other column."""
    from datasets import ClassLabel, Features, Image

    features = {"image": Image()}
    for column in manifest.columns:
        if column == "label":
            features[column] = ClassLabel(names=LABEL_NAMES)
        elif column in ("gender", "race", "age"):
            features[column] = ClassLabel(names=list(taxonomy.allowed(column)))
        elif column == "method":
            features[column] = ClassLabel(names=sorted(manifest["method"].astype(str).unique()))
        else:
            dtype = FIELDS.get(column) or pa.array(manifest[column].tolist(), from_pandas=True).type
            dtype = pa.string() if dtype == pa.null() else dtype
            features[column] = Features.from_arrow_schema(pa.schema([pa.field(column, dtype)]))[column]
    return Features(features)


def parse_size(value: str) -> int:
    """`500MB` / `2GB` / `1000` -> bytes (decimal units, like the Hub)."""
    text = str(value).strip().upper()
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            text, scale = text[: -len(unit)], factor
            break
    else:
        scale = 1
    try:
        size = int(float(text) * scale)
    except ValueError:
        raise ConfigError(f"release.max_shard_size: expected e.g. '500MB', got {value!r}") from None
    if size <= 0:
        raise ConfigError(f"release.max_shard_size: expected a positive size such as '500MB', got {value!r}")
    return size


def _image_bytes(rows: pd.DataFrame, root: Path, file: str) -> list[bytes]:
    """Each row's file, decoded once before it is embedded: what is published must be an image
    inside the folder (a linked text file or a decompression bomb is a named bad row, not a shard)."""
    roots = allowed_roots(root)
    out = []
    for row, rel in zip(rows.index, rows["path"]):
        try:
            path = resolve_inside(root, str(rel), f"{file} row {row} column 'path'", roots=roots)
            data = path.read_bytes()
            check_image_bytes(data, str(path))
        except OSError as exc:
            raise ManifestError(file, f"cannot read image {rel!r} ({exc})", row=int(row), column="path") from None
        except FairforgeError as exc:
            raise ManifestError(file, str(exc), row=int(row), column="path") from None
        out.append(data)
    return out


def _encode_rows(rows: pd.DataFrame, root: Path, features: Features, file: str) -> pa.Table:
    images = _image_bytes(rows, root, file)
    batch: dict[str, list] = {"image": [{"bytes": b, "path": p} for b, p in zip(images, rows["path"])]}
    for column in rows.columns:
        values = rows[column].astype(object).where(rows[column].notna(), None).tolist()
        if column in ("gender", "race", "age"):
            values = [UNKNOWN if v is None else v for v in values]
        batch[column] = values
    encoded = features.encode_batch(batch)
    return pa.Table.from_pydict(encoded, schema=features.arrow_schema)


def shard_digest(rows: pd.DataFrame, features: Features) -> str:
    """What a shard's bytes depend on: its rows (image digests included) and the features."""
    payload = rows.astype(object).where(rows.notna(), None).to_json(orient="split", index=False)
    return hashlib.sha256((payload + json.dumps(features.to_dict(), sort_keys=True)).encode()).hexdigest()


def is_our_shard(path: Path) -> bool:
    """Whether `path` is a Parquet shard a release wrote (it carries the shard digest)."""
    try:
        return DIGEST_KEY in (pq.read_schema(path).metadata or {})
    except (OSError, pa.ArrowInvalid):
        return False


def write_shards(
    manifest: pd.DataFrame, root: Path, release_dir: Path, features: Features, cfg: ReleaseConfig, file: str = "<manifest>"
) -> dict[str, list[str]]:
    """Write every split's shards (skipping those already written with the same rows).

    Stale shards (from a larger earlier release) are removed only when they carry the shard
    digest, i.e. a release wrote them; any other file in `data/` is left alone.
    """
    max_bytes = parse_size(cfg.max_shard_size)
    written: dict[str, list[str]] = {}
    for split in SPLITS:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            continue
        total = sum(os.path.getsize(root / p) for p in rows["path"])
        n = min(len(rows), max(1, math.ceil(total / max_bytes)))
        written[split] = []
        for k, part in enumerate(tqdm(np.array_split(np.arange(len(rows)), n), desc=f"release {split}", unit="shard")):
            chunk = rows.iloc[part]
            name = f"{DATA}/{split}-{k:05d}-of-{n:05d}.parquet"
            target = release_dir / name
            digest = shard_digest(chunk, features)
            if not (target.is_file() and (pq.read_schema(target).metadata or {}).get(DIGEST_KEY) == digest.encode()):
                table = _encode_rows(chunk, root, features, file)
                table = table.replace_schema_metadata({**table.schema.metadata, DIGEST_KEY: digest.encode()})
                with atomic_open(target, "wb") as handle:
                    pq.write_table(table, handle, row_group_size=cfg.row_group_size)
            written[split].append(name)
    keep = {name for names in written.values() for name in names}
    for stale in sorted((release_dir / DATA).glob("*.parquet")):
        if f"{DATA}/{stale.name}" not in keep and is_our_shard(stale):
            stale.unlink()
    return written


def save_arrow(release_dir: Path) -> None:
    """Load the release as a user would (`load_dataset(RELEASE_DIR)`) and `save_to_disk` it."""
    from datasets import load_dataset

    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=release_dir))
    try:
        dataset = load_dataset(str(release_dir), cache_dir=str(scratch / "cache"))
        dataset.save_to_disk(str(scratch / ARROW))
        final = release_dir / ARROW
        if final.exists():
            shutil.rmtree(final)
        os.replace(scratch / ARROW, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def release_files(release_dir: Path) -> list[str]:
    """The files a push uploads: the card and the shards a release wrote, nothing else.

    A stray file in RELEASE_DIR (a note, a symlink to a secret) is never pushed: only regular
    files count, and under `data/` only Parquet shards carrying the release's digest (as does
    `references/real.parquet`, the imported rows listed by id).
    """
    out = []
    card = release_dir / CARD
    if card.is_file() and not card.is_symlink():
        out.append(CARD)
    data = release_dir / DATA
    if data.is_dir():
        for path in sorted(data.glob("*.parquet")):
            if path.is_file() and not path.is_symlink() and is_our_shard(path):
                out.append(f"{DATA}/{path.name}")
    references = release_dir / REFERENCES
    if references.is_file() and not references.is_symlink() and is_our_shard(references):
        out.append(REFERENCES)
    return out


def sweep_scratch(release_dir: Path) -> None:
    """Remove scratch folders a killed run left inside RELEASE_DIR."""
    for leftover in release_dir.glob(f"{SCRATCH_PREFIX}*"):
        if leftover.is_dir() and not leftover.is_symlink():
            log.info("release: removing %s (left by an interrupted run)", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def run_release(
    in_dir: str | Path,
    release_dir: str | Path,
    cfg: ReleaseConfig,
    taxonomy: Taxonomy,
    repo_id: str | None = None,
    include_real: bool | None = None,
) -> ReleaseResult:
    """Write RELEASE_DIR from the balance stage's DIR (its manifest with `split`).

    `include_real` (default `cfg.include_real`): put imported real rows in the shards too."""
    in_dir, release_dir = Path(in_dir), Path(release_dir)
    repo = repo_id or cfg.repo_id
    if repo is not None and not REPO_ID.match(repo):
        raise ConfigError(
            f"release.repo_id: expected 'name' or 'owner/name' (letters, digits, '-', '_', '.'), got {repo!r}"
        )
    parse_size(cfg.max_shard_size)
    manifest = read_manifest(in_dir, taxonomy, check_files=True)
    root = Path(manifest.attrs["root"])
    if manifest["split"].isna().any():
        row = int(np.flatnonzero(manifest["split"].isna().to_numpy())[0])
        raise ManifestError(
            manifest.attrs["file"], "every row needs a split (run `fairforge balance` first)", row=row, column="split"
        )
    check_no_leaks(manifest, manifest.attrs["file"])
    claim_output(release_dir, "release", inputs=[in_dir, root])
    sweep_scratch(release_dir)
    include_real = cfg.include_real if include_real is None else include_real
    imported = manifest["source"].astype(str) != SYNTHETIC_SOURCE
    write_references(manifest[imported] if not include_real else manifest.iloc[:0], release_dir)
    if not include_real:
        manifest = manifest[~imported]  # the index stays the manifest file's row, for messages
    features = build_features(manifest, taxonomy)
    written = write_shards(manifest, root, release_dir, features, cfg, manifest.attrs["file"])
    split_sizes = {s: int((manifest["split"] == s).sum()) for s in written}
    split_bytes = {s: sum((release_dir / f).stat().st_size for f in files) for s, files in written.items()}

    provenance = json.loads((in_dir / "provenance.json").read_text()) if (in_dir / "provenance.json").is_file() else {}
    acceptance = pd.read_parquet(in_dir / "acceptance.parquet") if (in_dir / "acceptance.parquet").is_file() else None
    from datasets import DatasetInfo

    comps = components(provenance, cfg.licenses)
    meta = card_metadata(DatasetInfo(features=features)._to_yaml_dict(), split_sizes, split_bytes, comps, cfg)
    referenced = read_references(release_dir)
    body = card_body(meta, manifest, provenance, acceptance, repo, referenced)
    atomic_write_text(release_dir / CARD, render_card(meta, body))
    if cfg.save_to_disk:
        save_arrow(release_dir)
    files = release_files(release_dir)
    log.info("release: %s rows in %d files -> %s", split_sizes, len(files), release_dir)
    return ReleaseResult(release_dir, split_sizes, files, len(referenced))


def write_references(rows: pd.DataFrame, release_dir: Path) -> None:
    """`references/real.parquet`: the imported rows left out, by id, source, split and person."""
    target = release_dir / REFERENCES
    if rows.empty:
        if target.is_file():
            target.unlink()
        return
    table = pa.Table.from_pandas(
        rows[list(REFERENCE_COLUMNS)].astype(object).where(rows[list(REFERENCE_COLUMNS)].notna(), None),
        preserve_index=False,
    )
    # marked like a shard, so that `release_files` knows the release wrote it
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), DIGEST_KEY: b"references"})
    with atomic_open(target, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def read_references(release_dir: Path) -> pd.DataFrame:
    target = release_dir / REFERENCES
    if not target.is_file():
        return pd.DataFrame(columns=list(REFERENCE_COLUMNS))
    return pq.read_table(target).to_pandas()
