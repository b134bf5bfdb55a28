"""Tiny random-weight models of every kind fairforge loads, in the real formats.

Why: weights cannot be downloaded here (no internet) and CI has no GPU, yet every loading path a
user hits with real weights must run in the tests and in the embedded `tiny` preset. So each model
family gets a tiny instance built from a config with a fixed seed, saved once in the format the
real model ships in (a diffusers folder, a timm `local-dir:` folder, a FairFace state dict, ONNX
files with inswapper's and ArcFace's signatures) under a cache folder, and loaded by the very
code that loads the real thing.

`ensure(name)` returns the saved path, building it on first use. The cache is
`$FAIRFORGE_CACHE` (default `~/.cache/fairforge`) `/tiny/<name>-v<version>`.

A build happens inside whatever process first asks for the model, often a training run that has
just seeded its generators: builders seed torch themselves (so a model is the same whoever builds
it), and that must not leak into the caller. `isolated()` saves and restores every global random
state and thread setting around each build, so a run on an empty cache draws exactly the numbers
a run on a full one draws.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fairforge.registry import Registry

Builder = Callable[[Path], Path]

#: name -> builder(folder) -> path inside folder to return; the builder carries `tiny_version`.
TINY: Registry[Builder] = Registry("tiny model", discover="fairforge.tiny")


def register_tiny(name: str, version: int = 1) -> Callable[[Builder], Builder]:
    """Register a builder that writes a tiny model into a fresh folder and returns its path.

    `version` is part of the cache folder's name: bump it when the builder's output changes, so
    caches built by an older builder are not reused.
    """

    def wrap(builder: Builder) -> Builder:
        builder.tiny_version = version  # type: ignore[attr-defined]
        return TINY.register(name)(builder)

    return wrap


def cache_root() -> Path:
    """Where tiny models live: `$FAIRFORGE_CACHE/tiny` (default `~/.cache/fairforge/tiny`)."""
    base = os.environ.get("FAIRFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fairforge")
    return Path(base) / "tiny"


def available() -> list[str]:
    return TINY.names()


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Run a block without changing Python's, numpy's or torch's (CPU and CUDA) random state, the
    torch thread count, the default dtype, grad mode or the deterministic-algorithms switch."""
    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    grad, deterministic = torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _build(builder: Callable[[Path], Path], folder: Path) -> Path:
    """Run `builder` in isolation; the folder gets the permissions the umask allows (not 0700)."""
    with isolated():
        inner = builder(folder)
    from fairforge.atomic import current_umask

    os.chmod(folder, 0o777 & ~current_umask())
    return inner


def ensure(name: str) -> Path:
    """The path of tiny model `name`, built and saved on first use.

    Building happens in a temporary sibling folder renamed into place, so concurrent processes
    (two ranks, two tests) never see a half-written model: the first rename wins, the loser's copy
    is discarded.
    """
    builder = TINY.get(name)
    version = builder.tiny_version  # type: ignore[attr-defined]
    root = cache_root()
    final = root / f"{name}-v{version}"
    marker = final / ".complete"
    if not marker.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            inner = _build(builder, tmp)
            (tmp / ".complete").write_text(str(inner.relative_to(tmp)))
            try:
                os.replace(tmp, final) if not final.exists() else None
            except OSError:
                pass  # another process finished first
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if not marker.is_file():  # a stale partial folder from a killed build without marker
            shutil.rmtree(final, ignore_errors=True)
            return ensure(name)
    return final / marker.read_text().strip()


__all__ = ["TINY", "available", "cache_root", "ensure", "isolated", "register_tiny"]
