"""Two real processes make the same set as one; a SIGKILLed job restarted makes the same set too.

Both are `slow` (each launches Python processes that import torch and diffusers); CI runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

CELLS = ["male-Asian-20-29", "female-Black-30-39"]
SETTINGS = {
    "generate.align.crop_size": 64,
    "generate.diffusion.batch_size": 2,
    "generate.num_threads": 1,  # CPU bytes depend on the thread count: pin it to compare runs
    "generate.flush_every": 2,
}
pytestmark = pytest.mark.slow


def cli(out: Path) -> list[str]:
    sets = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    return [
        sys.executable,
        "-m",
        "fairforge",
        "generate",
        "--out",
        str(out),
        "--cells",
        *CELLS,
        "--count-per-cell",
        "3",
        "--no-progress",
        *sets,
    ]


def images(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in (folder / "images").rglob("*") if p.is_file()}


def assert_same_set(reference: Path, other: Path) -> None:
    """Same manifest (row for row), same image files byte for byte, and nothing else under images/."""
    expected, got = pd.read_parquet(reference / "manifest.parquet"), pd.read_parquet(other / "manifest.parquet")
    assert got["id"].is_unique
    pd.testing.assert_frame_equal(got, expected)
    assert images(other) == images(reference)
    assert set(images(other)) == set(got["path"])
    assert not [p for p in other.rglob("*.tmp")] and not (other / "shards").exists()


@pytest.fixture(scope="module")
def reference(tiny_cache, tmp_path_factory) -> Path:
    """One uninterrupted single-process run through the CLI."""
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(cli(out), check=True, env=os.environ.copy(), capture_output=True)
    return out


def _two_process_worker(out: str) -> None:
    from accelerate.state import PartialState

    from fairforge.config import deep_merge, validate
    from fairforge.config.generate import GenerateConfig
    from fairforge.generate import JobOptions, run_generate

    PartialState._reset_state()  # forked from the test process: start the distributed state afresh
    state = PartialState(cpu=True)
    assert state.num_processes == 2
    updates: dict = {}
    for key, value in SETTINGS.items():
        node = updates
        *parents, leaf = key.split(".")[1:]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    cfg = validate(GenerateConfig, deep_merge({}, updates))
    run_generate(cfg, out, options=JobOptions(cells=CELLS, count_per_cell=3, progress=False))
    Path(out, f"ran-rank{state.process_index}-of-{state.num_processes}").touch()


def test_two_processes_make_the_same_set_as_one(reference, tmp_path):
    from accelerate import debug_launcher
    from diffusers import AutoPipelineForText2Image  # noqa: F401

    import fairforge.generate.job  # noqa: F401  imported once here, shared by the forked ranks
    import fairforge.generate.swap  # noqa: F401

    debug_launcher(_two_process_worker, args=(str(tmp_path),), num_processes=2)
    assert (tmp_path / "ran-rank0-of-2").exists() and (tmp_path / "ran-rank1-of-2").exists()
    assert_same_set(reference, tmp_path)


def _run_until(out: Path, n_images: int, timeout: float = 300) -> int:
    """Start the job and SIGKILL it as soon as `n_images` image files exist; its return code."""
    proc = subprocess.Popen(cli(out), env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if sum(1 for p in (out / "images").rglob("*.png")) >= n_images if (out / "images").is_dir() else False:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    return proc.wait()


def test_sigkill_midway_and_restart_equals_an_uninterrupted_run(reference, tmp_path):
    # killed once among the diffusion batches, restarted and killed again among the fakes
    assert _run_until(tmp_path, 3) == -signal.SIGKILL
    assert (tmp_path / "plan.parquet").exists() and not (tmp_path / "manifest.parquet").exists()
    assert _run_until(tmp_path, 10) == -signal.SIGKILL
    assert not (tmp_path / "manifest.parquet").exists()
    subprocess.run(cli(tmp_path), check=True, env=os.environ.copy(), capture_output=True)
    assert_same_set(reference, tmp_path)
