"""Shared fixtures: offline mode and one tiny-model cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide `FAIRFORGE_CACHE`, so each tiny model is built once per test run.

    Set `FAIRFORGE_TEST_CACHE` to reuse a cache across runs while developing.
    """
    folder = Path(os.environ.get("FAIRFORGE_TEST_CACHE") or tmp_path_factory.mktemp("fairforge-cache"))
    previous = os.environ.get("FAIRFORGE_CACHE")
    os.environ["FAIRFORGE_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("FAIRFORGE_CACHE", None)
    else:
        os.environ["FAIRFORGE_CACHE"] = previous
