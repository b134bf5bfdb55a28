"""The pipeline runner's processes, lock, scratch and console; written files and the umask."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairforge.atomic import atomic_write_text
from fairforge.errors import FairforgeError
from fairforge.paths import claim_output
from fairforge.pipeline.process import Tee, run_lock, sweep_scratch
from fairforge.pipeline.runner import run_pipeline

#: A stage that starts a grandchild (as `accelerate launch` does), records its pid, and waits.
STAGE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
print("stage started", flush=True)
time.sleep(120)
"""

RUNNER = """
import sys
from pathlib import Path
from fairforge.pipeline.process import run_command
run_command([sys.executable, "-c", sys.argv[1], sys.argv[2]], Path(sys.argv[3]), {})
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_killing_the_runner_ends_the_stage_and_its_children(tmp_path: Path) -> None:
    pid_file, log = tmp_path / "pid", tmp_path / "log.txt"
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, STAGE, str(pid_file), str(log)])
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) != 0
    deadline = time.monotonic() + 15
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(grandchild)
    if alive:
        os.kill(grandchild, signal.SIGKILL)
    assert not alive, "the stage's child outlived the pipeline"
    text = log.read_text()
    assert "stage started" in text and "stopped by SIGTERM" in text


def test_two_runs_on_one_folder_are_locked_out(tmp_path: Path) -> None:
    run_dir = claim_output(tmp_path / "run", "pipeline run")
    with run_lock(run_dir):
        with pytest.raises(FairforgeError, match=rf"{run_dir}: another `fairforge pipeline run` .*pid {os.getpid()}"):
            run_pipeline(tmp_path / "pipelines.yaml", run_dir)
    with run_lock(run_dir):  # released when the first one ended
        pass


def test_pipeline_refuses_a_foreign_run_folder(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("x")
    with pytest.raises(FairforgeError, match="holds files fairforge did not write"):
        run_pipeline(tmp_path / "pipelines.yaml", tmp_path / "home")


def test_scratch_of_a_killed_stage_is_swept(tmp_path: Path) -> None:
    stage = tmp_path / "release"
    for folder in (".scratch-x1/arrow", "checkpoints/.tmp-step_00000004", "checkpoints/step_00000002"):
        (stage / folder).mkdir(parents=True)
    (stage / ".manifest.parquet.abc.tmp").write_bytes(b"half")
    (stage / "data").mkdir()
    (stage / "data" / ".train-00000.parquet.x.tmp").write_bytes(b"half")
    (stage / "data" / "train-00000.parquet").write_bytes(b"whole")
    removed = sweep_scratch(stage)
    assert len(removed) == 4
    assert sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")) == [
        "checkpoints",
        "checkpoints/step_00000002",
        "data",
        "data/train-00000.parquet",
    ]


class _Console(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


BAR = "start\n" + "".join(f"\rgen: {k}/3" for k in range(4)) + "\n" + "measure: 1/1\rmeasure: 1/1 done\ndone\n"


@pytest.mark.parametrize("tty", [True, False])
def test_child_progress_bars_pass_through(tmp_path: Path, tty: bool) -> None:
    console = _Console(tty)
    with open(tmp_path / "log.txt", "w", encoding="utf-8") as log:
        tee = Tee(log, console)
        for k in range(0, len(BAR), 7):  # chunks cut anywhere, as a pipe delivers them
            tee.feed(BAR[k : k + 7])
        tee.close()
    lines = ["start", "gen: 3/3", "measure: 1/1 done", "done"]
    assert (tmp_path / "log.txt").read_text().splitlines() == lines  # complete, one line per bar
    out = console.getvalue()
    if tty:
        assert "\r\x1b[K  | gen: 1/3" in out  # the stage's one line, redrawn in place
        assert out.replace("\r\x1b[K", "\n").split("\n").count("  | gen: 3/3") >= 1
    else:
        assert "\r" not in out and out.splitlines() == [f"  | {line}" for line in lines]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path: Path, mask: int) -> None:
    previous = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
