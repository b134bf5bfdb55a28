"""Headless Chromium screenshots for the report tests (Debian's `chromium` package).

The flags are the ones that work on a machine with no network: without the background-networking
switches Chromium spends its start failing to reach Google's hosts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def screenshot(page: Path, shot: Path, size: tuple[int, int] = (1200, 2000)) -> np.ndarray:
    """Render `page` (an HTML file) and return the screenshot's RGB pixels.

    Chromium is part of the test setup (scripts/setup.sh installs Debian's package), so its absence
    is a failure that says how to fix it, not a skip.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: run scripts/setup.sh or `apt-get install -y chromium`")
    command = [
        chromium,
        *FLAGS,
        f"--user-data-dir={shot.parent / (shot.stem + '-profile')}",
        f"--screenshot={shot}",
        f"--window-size={size[0]},{size[1]}",
        page.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == size
    return np.asarray(image)


def assert_looks_like_a_report(pixels: np.ndarray) -> None:
    """A real page: mostly white background, but text, tables and plots draw many distinct colours."""
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
    assert (pixels.mean(axis=2) < 128).mean() > 0.01  # dark text and bars
    assert (pixels.mean(axis=2) > 240).mean() > 0.3  # page background
