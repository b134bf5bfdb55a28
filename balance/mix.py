"""Mix the balanced synthetic set with real manifests, and bring every image under DIR.

Real rows are sampled at `real_ratio` real rows per synthetic row, proportionally per
(cell, label) stratum with a seeded generator, so the real part keeps its own demographic shape
and the same seed picks the same rows. The output manifest's paths must be relative to DIR
(manifests never point outside their folder), so each kept image is hard-linked (or copied, or
symlinked) to `DIR/images/<source>/<its path>`, atomically. `source` becomes a folder name, so it
must be one plain path component, and every image's real path must lie inside its manifest's
folder (see `fairforge.paths`); both are checked before anything is placed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from fairforge.errors import ManifestError
from fairforge.paths import PathError, allowed_roots, component_problem, resolve_inside

log = logging.getLogger(__name__)

IMAGES = "images"


def sample_real(
    real: pd.DataFrame, n_synthetic: int, ratio: float | None, strata: pd.Series, seed: int
) -> pd.DataFrame:
    """`ratio * n_synthetic` real rows (all of them when `ratio` is None), spread over strata."""
    if ratio is None or real.empty:
        return real
    want = round(ratio * n_synthetic)
    if want >= len(real):
        if want > len(real):
            log.warning("mix: asked for %d real rows, the real manifests hold %d; taking all", want, len(real))
        return real
    sizes = strata.value_counts(sort=False).sort_index()
    exact = sizes * want / len(real)
    quota = np.floor(exact).astype(int)
    for key in (exact - quota).sort_values(ascending=False, kind="stable").index[: want - int(quota.sum())]:
        quota[key] += 1
    rng = np.random.default_rng(seed)
    picked = []
    for key, rows in real.groupby(strata, sort=True).groups.items():
        rows = list(rows)
        picked.extend(rng.choice(rows, size=int(quota[key]), replace=False).tolist() if quota[key] else [])
    return real.loc[sorted(picked, key=real.index.get_loc)]


def place(src: Path, dst: Path, mode: str) -> None:
    """Put `src` at `dst` (hard link, copy or symlink) atomically; a rerun is a no-op."""
    if dst.exists() and mode != "symlink" and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        if mode == "hardlink":
            try:
                os.link(src, tmp)
            except OSError:  # another filesystem, or links not supported
                shutil.copy2(src, tmp)
        elif mode == "copy":
            shutil.copy2(src, tmp)
        else:
            os.symlink(os.path.abspath(src), tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def materialize(
    frame: pd.DataFrame,
    roots: pd.Series,
    out_dir: Path,
    mode: str,
    previous: set[str] | frozenset[str] = frozenset(),
    files: pd.Series | None = None,
) -> pd.DataFrame:
    """Place each row's image under `out_dir/images/<source>/<path>`; returns rows with new paths.

    `previous` holds the paths (relative to `out_dir`) an earlier run placed, i.e. its manifest's;
    those no row uses now are removed. Nothing else under `out_dir/images` is touched: a file
    this stage did not place is not its to delete. `files` names each row's manifest for errors.
    """
    where = files if files is not None else roots
    for i, (source, name) in enumerate(zip(frame["source"], where)):
        problem = component_problem(source)
        if problem is not None:
            raise ManifestError(
                str(name), f"source {problem} (it names the folder images/<source>/)", row=i, column="source"
            )
    new_paths = [f"{IMAGES}/{source}/{path}" for source, path in zip(frame["source"], frame["path"])]
    owner: dict[str, str] = {}
    root_lists: dict[str, list[str]] = {}
    for i, (new, root, path, name) in enumerate(zip(new_paths, roots, frame["path"], where)):
        try:
            src = str(
                resolve_inside(root, str(path), f"row {i}", roots=root_lists.setdefault(root, allowed_roots(root)))
            )
        except PathError as exc:
            raise ManifestError(str(name), str(exc), row=i, column="path") from None
        if owner.setdefault(new, src) != src:
            raise ManifestError(
                src, f"two inputs place an image at {new} (same source and path): {owner[new]} and {src}"
            )
    for new, src in owner.items():
        place(Path(src), out_dir / new, mode)
    wanted = set(new_paths)
    for old in sorted(previous - wanted):
        if old.startswith(f"{IMAGES}/") and ".." not in Path(old).parts:
            target = out_dir / old
            if target.is_file() or target.is_symlink():
                target.unlink()
    return frame.assign(path=new_paths)
