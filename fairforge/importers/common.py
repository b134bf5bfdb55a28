"""What every importer shares: bad-row bookkeeping, path resolution, image checks, placement, writing.

Why one module: the three input formats differ only in how they are parsed. What happens after
parsing must be identical for all of them, or the manifests they produce would differ in subtle
ways: every path is resolved against the images root and may not leave it; every image is checked
(exists always, header and sha256 unless switched off); the manifest lives in `--out` with paths
that never escape it (images outside `--out` are symlinked or copied under `--out/images/`); a bad
row either stops the import with an error naming the file, row and field, or (`--skip-bad`) goes to
`rejected.parquet` with the reason while the rest is written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import posixpath
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from fairforge.atomic import atomic_open
from fairforge.errors import FairforgeError, ManifestError
from fairforge.images import image_size
from fairforge.manifest import FIELDS, MANIFEST_NAME, _clean, row_problems, write_manifest
from fairforge.paths import (
    PathError,
    allowed_roots,
    claim_output,
    component_problem,
    is_owned,
    record_link_targets,
    within_roots,
)
from fairforge.taxonomy import DEFAULT_TAXONOMY, Taxonomy

log = logging.getLogger(__name__)

REJECTED_NAME = "rejected.parquet"
IMAGES_DIR = "images"
#: Written into `--out/images/` so a rerun only ever replaces an images folder an import made.
IMAGES_MARKER = ".fairforge-import"
PLACEMENTS = ("link", "copy")


@dataclass(frozen=True)
class ImportOptions:
    """The switches every importer takes, with the CLI's defaults."""

    skip_bad: bool = False
    #: how images outside `--out` get inside it: `link` (symlink) or `copy`
    place: str = "link"
    #: read each image's header (width, height) and hash it; existence is always checked
    verify_images: bool = True
    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    #: follow symlinks under the images root that point outside it (off: such a row is bad)
    follow_links: bool = False

    def __post_init__(self) -> None:
        if self.place not in PLACEMENTS:
            raise ValueError(f"place must be one of {list(PLACEMENTS)}, got {self.place!r}")


# ------------------------------------------------------------------------------------------------
# bad rows
# ------------------------------------------------------------------------------------------------
@dataclass
class Problems:
    """The bad rows of one input file.

    Checks run in stages from cheap to expensive (columns, paths, files, image contents); after
    each stage `check()` raises the earliest problem unless bad rows are to be skipped, so a typo
    in row 3 is reported before a single image is opened. Later stages only look at rows that are
    still `good`.
    """

    file: str
    n: int
    skip_bad: bool
    #: the row number users see for each position (default: 1-based data rows)
    row_numbers: np.ndarray | None = None
    #: the file each position comes from, when the rows come from several files
    row_files: Sequence[str] | None = None
    reasons: dict[int, list[str]] = field(default_factory=dict)
    _first: dict[int, tuple[str, str]] = field(default_factory=dict)

    def number(self, position: int) -> int:
        return int(self.row_numbers[position]) if self.row_numbers is not None else position + 1

    def add(self, rows: np.ndarray | Sequence[int], column: str, message: str | Callable[[int], str]) -> None:
        """Record a problem for `rows` (a boolean mask or 0-based positions) in `column`."""
        positions = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=int)
        for row in positions.tolist():
            text = message(row) if callable(message) else message
            self.reasons.setdefault(row, []).append(f"{column}: {text}")
            self._first.setdefault(row, (column, text))

    @property
    def good(self) -> np.ndarray:
        mask = np.ones(self.n, dtype=bool)
        if self.reasons:
            mask[list(self.reasons)] = False
        return mask

    def check(self) -> None:
        """Raise the earliest problem as a `ManifestError` (row 1-based) unless skipping bad rows."""
        if self.skip_bad or not self.reasons:
            return
        row = min(self.reasons)
        column, text = self._first[row]
        more = len(self.reasons) - 1
        suffix = f" (and {more} more bad row(s); --skip-bad writes them to {REJECTED_NAME})" if more else ""
        file = self.row_files[row] if self.row_files is not None else self.file
        raise ManifestError(file, text + suffix, row=self.number(row), column=column)

    def rejected(self, original: pd.DataFrame) -> pd.DataFrame:
        """The bad rows' original fields, their 1-based `row` and the `reason`."""
        rows = sorted(self.reasons)
        out = original.iloc[rows].fillna("").astype(str).reset_index(drop=True)
        out.insert(0, "row", np.asarray([self.number(r) for r in rows], dtype=np.int64))
        out["reason"] = ["; ".join(self.reasons[r]) for r in rows]
        return out


def require_columns(frame: pd.DataFrame, required: Sequence[str], file: str) -> None:
    """A missing column is a problem of the file, not of a row: always an error."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ManifestError(
            file,
            f"missing column(s) {missing}; expected {list(required)}, found {list(frame.columns)}",
            column=missing[0],
        )


def read_table_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A CSV or JSON-lines file as strings exactly as written (empty cells are '')."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(str(path), "file not found")
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    return _read_csv(path)


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV as strings, its structure checked first: every row has as many fields as the header
    (an unquoted comma in a row would otherwise shift its values into the wrong columns) and no
    column name appears twice (pandas would silently rename the second one)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = [row for row in csv.reader(handle, skipinitialspace=True) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(str(path), f"not a readable CSV file ({exc})") from None
    if not lines:
        raise ManifestError(str(path), "empty file: expected a header row")
    header = [name.strip() for name in lines[0]]
    seen: dict[str, int] = {}
    for k, name in enumerate(header, start=1):
        if name in seen:
            raise ManifestError(
                str(path), f"column {name!r} appears twice in the header (columns {seen[name]} and {k})", column=name
            )
        seen[name] = k
    for number, row in enumerate(lines[1:], start=1):
        if len(row) != len(header):
            extra = (
                f"; the extra value(s) {row[len(header) :]} follow column {header[-1]!r}"
                if len(row) > len(header)
                else ""
            )
            raise ManifestError(
                str(path),
                f"{len(row)} fields, the header has {len(header)} (an unquoted comma?){extra}",
                row=number,
            )
    return pd.DataFrame(lines[1:], columns=header, dtype=str)


def _read_jsonl(path: Path) -> pd.DataFrame:
    """JSON lines as strings: numbers keep their JSON spelling (`1`, not pandas' `1.0`)."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(str(path), f"not valid JSON ({exc})", row=number) from None
            if not isinstance(record, dict):
                raise ManifestError(str(path), f"expected a JSON object, got {type(record).__name__}", row=number)
            records.append(
                {k: "" if v is None else v if isinstance(v, str) else json.dumps(v) for k, v in record.items()}
            )
    return pd.DataFrame.from_records(records).fillna("").astype(str)


# ------------------------------------------------------------------------------------------------
# paths
# ------------------------------------------------------------------------------------------------
def relative_paths(
    raw: Sequence[str],
    images_root: Path,
    problems: Problems,
    column: str,
    strip_prefix: str | None = None,
) -> list[str | None]:
    """Each raw path as a normalized POSIX path relative to `images_root` (None where bad).

    Accepts relative paths, Windows separators (DeepfakeBench's JSONs use them), and absolute
    paths that lie under `images_root`; `strip_prefix` removes the original machine's folder
    (e.g. `/data/pgfdd/`) so the rest resolves against `images_root`. A path that would leave
    `images_root` (`..`, another absolute folder) is a bad row: nothing outside it is read.
    """
    root = os.path.abspath(images_root).replace(os.sep, "/").rstrip("/") + "/"
    prefix = strip_prefix.replace("\\", "/") if strip_prefix else None
    out: list[str | None] = []
    for i, value in enumerate(raw):
        path = str(value).strip().replace("\\", "/")
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :]
        if not path:
            problems.add([i], column, "empty path")
            out.append(None)
            continue
        if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
            if not path.startswith(root):
                hint = "; pass --strip-prefix with the original folder" if not prefix else ""
                problems.add([i], column, f"absolute path {value!r} is not under --images-root {root[:-1]}{hint}")
                out.append(None)
                continue
            path = path[len(root) :]
        path = posixpath.normpath(path)
        if path == "." or path == ".." or path.startswith("../"):
            problems.add([i], column, f"path {value!r} leaves --images-root")
            out.append(None)
            continue
        out.append(path)
    return out


def flag_duplicates(rel: Sequence[str | None], problems: Problems, column: str) -> None:
    """The second and later rows naming the same image are bad (first one wins)."""
    series = pd.Series(rel, dtype=object)
    good = problems.good & series.notna().to_numpy()
    candidates = series[good]
    dup = candidates.duplicated(keep="first")
    if dup.any():
        first = {p: i for i, p in reversed(list(candidates[~dup].items()))}
        for i in candidates[dup].index:
            problems.add([int(i)], column, f"duplicate path {rel[i]!r} (first at row {problems.number(first[rel[i]])})")


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------
def _inspect(path: str) -> tuple[int, int, str]:
    """Width, height (header only, within the pixel limit) and sha256 of one image file."""
    width, height = image_size(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return width, height, digest.hexdigest()


def check_images(
    rel: Sequence[str | None],
    images_root: Path,
    problems: Problems,
    column: str,
    verify: bool,
    follow_links: bool = False,
) -> pd.DataFrame:
    """Width, height and sha256 per row (null where bad or not verified).

    Existence is always checked (a stat per row), and so is where each file really is: a symlink
    that leads outside `images_root` is a bad row unless `follow_links`. Headers and hashes are
    read in a thread pool (hashing releases the GIL) and can be switched off for huge sets.
    """
    n = len(rel)
    width = np.full(n, np.nan)
    height = np.full(n, np.nan)
    sha = np.full(n, None, dtype=object)
    good = problems.good
    base = os.fspath(images_root)
    todo = [i for i in range(n) if good[i] and rel[i] is not None]
    missing = [i for i in todo if not os.path.isfile(f"{base}/{rel[i]}")]
    problems.add(missing, column, lambda i: f"image file {rel[i]!r} not found under --images-root {images_root}")
    missing_set = set(missing)
    roots = allowed_roots(images_root)
    outside = [
        i for i in todo if i not in missing_set and not within_roots(f"{base}/{rel[i]}", roots, follow_links or None)
    ]
    problems.add(
        outside,
        column,
        lambda i: (
            f"{rel[i]!r} is a link to {os.path.realpath(f'{base}/{rel[i]}')}, outside --images-root "
            f"{images_root} (--follow-links follows it)"
        ),
    )
    problems.check()
    if not verify:
        return pd.DataFrame({"width": width, "height": height, "sha256": sha})
    bad_set = missing_set | set(outside)
    todo = [i for i in todo if i not in bad_set]

    def work(chunk: list[int]) -> list[tuple[int, tuple[int, int, str] | str]]:
        done: list[tuple[int, tuple[int, int, str] | str]] = []
        for i in chunk:
            try:
                done.append((i, _inspect(f"{base}/{rel[i]}")))
            except FairforgeError as exc:
                done.append((i, f"unreadable image {rel[i]!r}: {str(exc).split(': ', 1)[-1]}"))
            except OSError as exc:
                done.append((i, f"unreadable image {rel[i]!r} ({exc})"))
        return done

    chunks = [todo[k : k + 256] for k in range(0, len(todo), 256)]  # one task per chunk: futures are not free
    with (
        ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool,
        tqdm(total=len(todo), desc="checking images", unit="img", disable=None) as bar,
    ):
        for done in pool.map(work, chunks):
            for i, result in done:
                if isinstance(result, str):
                    problems.add([i], column, result)
                else:
                    width[i], height[i], sha[i] = result
            bar.update(len(done))
    problems.check()
    return pd.DataFrame({"width": width, "height": height, "sha256": sha})


def place_images(rel: Sequence[str], images_root: Path, out: Path, place: str) -> list[str]:
    """Manifest paths (relative to `out`) for images at `images_root/rel`.

    Images already inside `out` are referenced where they are. Others are symlinked or copied under
    `out/images/<rel>`, built in a staging folder and swapped in at the end, so a rerun replaces
    the previous import's images cleanly and a killed run leaves the old ones intact.
    """
    root = images_root.resolve()
    target = out.resolve()
    if root == target or target in root.parents:
        prefix = root.relative_to(target).as_posix()
        return [p if prefix == "." else f"{prefix}/{p}" for p in rel]
    final = target / IMAGES_DIR
    if final.exists() and not (final / IMAGES_MARKER).is_file():
        raise FairforgeError(
            f"{final}: exists and was not made by `fairforge import`; refusing to replace it "
            "(choose another --out, or an --images-root inside --out to reference images in place)"
        )
    for leftover in [*target.glob(f".{IMAGES_DIR}.tmp-*"), *target.glob(f".{IMAGES_DIR}.old-*")]:
        shutil.rmtree(leftover)  # from a run killed mid-swap
    staging = target / f".{IMAGES_DIR}.tmp-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        made: set[str] = set()
        source, dest = os.fspath(root), os.fspath(staging)  # strings: pathlib costs more than the syscall here
        for p in tqdm(rel, desc=f"{place}ing images", unit="img", disable=None):
            parent = posixpath.dirname(p)
            if parent not in made:
                os.makedirs(f"{dest}/{parent}", exist_ok=True)
                made.add(parent)
            if place == "link":
                os.symlink(f"{source}/{p}", f"{dest}/{p}")
            else:
                shutil.copy2(f"{source}/{p}", f"{dest}/{p}")
        (staging / IMAGES_MARKER).write_text(f"made by fairforge import from {root}\n", encoding="utf-8")
        old = target / f".{IMAGES_DIR}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old.exists():
        shutil.rmtree(old)
    return [f"{IMAGES_DIR}/{p}" for p in rel]


# ------------------------------------------------------------------------------------------------
# the common tail of every importer
# ------------------------------------------------------------------------------------------------
def finish(
    rows: pd.DataFrame,
    rel: Sequence[str | None],
    *,
    original: pd.DataFrame,
    problems: Problems,
    images_root: Path,
    out: str | os.PathLike[str],
    options: ImportOptions,
    path_column: str,
) -> Path:
    """Check paths and images, place them, write `out/manifest.parquet` (and `rejected.parquet`).

    `rows` holds the manifest columns the importer parsed, one per input row (bad rows included;
    they are dropped here); `rel` the rows' paths relative to `images_root`.
    """
    out = Path(out)
    images_root = Path(images_root)
    if not images_root.is_dir():
        raise ManifestError(str(images_root), "--images-root is not a folder")
    check_out(out)
    flag_duplicates(rel, problems, path_column)
    schema_problems(rows, problems, options.taxonomy)
    problems.check()
    files = check_images(rel, images_root, problems, path_column, options.verify_images, options.follow_links)
    good = problems.good
    claim_output(out, "import", foreign_ok=True)
    rejected_file = out / REJECTED_NAME
    if not good.any():
        _write_rejected(problems.rejected(original), rejected_file)
        raise ManifestError(problems.file, f"every row is bad; nothing to import (see {rejected_file})")
    kept = rows.loc[good].reset_index(drop=True)
    kept_rel = [p for p, g in zip(rel, good) if g]
    if options.verify_images:
        kept["width"] = files.loc[good, "width"].to_numpy()
        kept["height"] = files.loc[good, "height"].to_numpy()
        kept["sha256"] = files.loc[good, "sha256"].to_numpy()
    kept["path"] = place_images(kept_rel, images_root, out, options.place)  # type: ignore[arg-type]
    if options.place == "link" or options.follow_links:  # readers of OUT may follow these links
        record_link_targets(out, [images_root])
    target = write_manifest(kept, out / MANIFEST_NAME, options.taxonomy)
    log.info("%s: %d row(s) imported into %s", problems.file, len(kept), target)
    if problems.reasons:
        _write_rejected(problems.rejected(original), rejected_file)
        log.warning("%s: %d bad row(s) written to %s", problems.file, len(problems.reasons), rejected_file)
    else:
        rejected_file.unlink(missing_ok=True)  # a previous run's, no longer true
    return target


def check_out(out: Path) -> None:
    """`--out` must be a folder (or not exist), and may not hold a manifest fairforge did not write.

    An import may write into a folder of the user's (beside images it references in place), so a
    non-empty folder is accepted; replacing a `manifest.parquet` or `rejected.parquet` there is
    not, unless an earlier import (its owner marker) wrote them.
    """
    if out.exists() and not out.is_dir():
        raise PathError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not is_owned(out):
        for name in (MANIFEST_NAME, REJECTED_NAME):
            if (out / name).exists():
                raise PathError(f"--out {out}: holds a {name} fairforge did not write; choose another folder")


def schema_problems(rows: pd.DataFrame, problems: Problems, taxonomy: Taxonomy) -> None:
    """Check the parsed rows against the manifest schema now, as bad rows of the INPUT file.

    Without this, a value the parser let through (a seed beyond int64, a confidence of 2, a
    `source` with a '/') would fail only when the manifest is written, as an error naming the
    output file and a row of the kept rows, which `--skip-bad` cannot skip.
    """
    positions = np.flatnonzero(problems.good)
    if not len(positions):
        return
    part = rows.iloc[positions].reset_index(drop=True)
    for column, dtype in FIELDS.items():
        if column not in part.columns or column == "path":
            continue
        values = part[column]
        try:
            pa.array(_clean(values, dtype), type=dtype, from_pandas=True)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
            pass
        for k, value in enumerate(values.tolist()):
            try:
                pa.array(_clean(pd.Series([value], dtype=object), dtype), type=dtype, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError) as exc:
                problems.add([positions[k]], column, f"expected {dtype}, got {value!r} ({exc})")
    frame = part.assign(path=[f"row/{k}" for k in range(len(part))])
    for k, column, message in row_problems(frame, taxonomy):
        if k >= 0 and column != "path" and (column != "id" or "duplicate" not in message):
            problems.add([positions[k]], column, message)
    if "source" in part.columns:
        for k, value in enumerate(part["source"].tolist()):
            problem = component_problem(value) if isinstance(value, str) and value else None
            if problem is not None:
                problems.add([positions[k]], "source", f"source {problem} (it becomes a folder name)")


def _write_rejected(rejected: pd.DataFrame, file: Path) -> None:
    with atomic_open(file, "wb") as handle:
        pq.write_table(pa.Table.from_pandas(rejected, preserve_index=False), handle)
