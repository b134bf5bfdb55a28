"""Mix the balanced synthetic set with real manifests, and bring every image under DIR.

Real rows are sampled at `real_ratio` real rows per synthetic row, proportionally per
(cell, label) stratum with a seeded generator, so the real part keeps its own demographic shape
and the same seed picks the same rows. The output manifest's paths must be relative to DIR
(manifests never point outside their folder), so each kept image is hard-linked (or copied, or
symlinked) to `DIR/images/<source>/<its path>`, atomically.
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


def materialize(frame: pd.DataFrame, roots: pd.Series, out_dir: Path, mode: str) -> pd.DataFrame:
    """Place each row's image under `out_dir/images/<source>/<path>`; returns rows with new paths.

    Files under `out_dir/images` that no row uses (left by an earlier run) are removed, so the
    folder holds exactly the manifest's images.
    """
    new_paths = [f"{IMAGES}/{source}/{path}" for source, path in zip(frame["source"], frame["path"])]
    owner: dict[str, str] = {}
    for new, root, path in zip(new_paths, roots, frame["path"]):
        src = str(Path(root) / path)
        if owner.setdefault(new, src) != src:
            raise ManifestError(
                src, f"two inputs place an image at {new} (same source and path): {owner[new]} and {src}"
            )
    for new, src in owner.items():
        place(Path(src), out_dir / new, mode)
    wanted = {str(out_dir / p) for p in new_paths}
    image_dir = out_dir / IMAGES
    if image_dir.is_dir():
        for path in sorted(image_dir.rglob("*")):
            if (path.is_file() or path.is_symlink()) and str(path) not in wanted:
                path.unlink()
    return frame.assign(path=new_paths)
