"""How the pipeline runs a stage's command: its own process group, its output teed, a folder lock.

Why: a stage is a child process (often `accelerate launch` with children of its own). Killing
`pipeline run` must end the whole stage, not leave it writing into the run folder; two runs on
one folder would interleave their writes, so the folder is locked; and the stage's console
output must reach both the terminal and `log.txt`: progress bars redraw one line with `\\r`,
which on a terminal stays one updating line per stage, in a pipe or a file (not a TTY) becomes
plain lines, and in `log.txt` is kept as each bar's last state before its line ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from fairforge.errors import FairforgeError

LOCK_NAME = ".pipeline.lock"
#: Seconds a stage gets to end after SIGTERM before its group is killed.
GRACE_SECONDS = 10.0
#: Scratch left by a killed stage, relative to its folder (each stage also sweeps its own).
SCRATCH_PATTERNS = (".scratch-*", ".images.tmp-*", ".images.old-*", "checkpoints/.tmp-step_*", ".*.tmp", "*/.*.tmp")


class StageInterrupted(FairforgeError):
    """The pipeline was told to stop (SIGTERM, SIGHUP or Ctrl-C) while a stage ran."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `run_dir` for the block, or fail at once naming the holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FairforgeError(
                f"{run_dir}: another `fairforge pipeline run` is using this folder ({holder}); wait for it or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def sweep_scratch(stage_dir: Path) -> list[Path]:
    """Remove the scratch files and folders a killed run left in `stage_dir`; returns them."""
    removed = []
    if not stage_dir.is_dir():
        return removed
    for pattern in SCRATCH_PATTERNS:
        for path in stage_dir.glob(pattern):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                continue
            removed.append(path)
    return removed


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `StageInterrupted` in the main thread while the block runs."""

    def handler(signum: int, frame: object) -> None:
        raise StageInterrupted(f"stopped by {signal.Signals(signum).name}")

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def end_group(process: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after `grace` seconds."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the group: grandchildren too
    process.wait()


class Tee:
    """Split a child's output into lines and bar redraws; route them to the console and the log."""

    def __init__(self, log: IO[str], console: IO[str], prefix: str = "  | ") -> None:
        self.log, self.console, self.prefix = log, console, prefix
        self.tty = bool(getattr(console, "isatty", lambda: False)())
        self.pending = ""  # text after the last \r or \n
        self.last_bar = ""  # the latest redraw of the bar on the current line
        self.bar_shown = False

    def feed(self, text: str) -> None:
        buffer = self.pending + text
        start = 0
        for k, char in enumerate(buffer):
            if char not in "\r\n":
                continue
            segment = buffer[start:k]
            start = k + 1
            if char == "\n":
                self._line(segment)
            else:
                self._redraw(segment)
        self.pending = buffer[start:]

    def _redraw(self, segment: str) -> None:
        """A bar refresh: the stage's one updating line on a TTY; elsewhere kept for the final line."""
        if not segment:
            return
        self.last_bar = segment
        if self.tty:
            self.console.write("\r\x1b[K" + self.prefix + segment)
            self.console.flush()
            self.bar_shown = True

    def _line(self, segment: str) -> None:
        text = segment if segment else self.last_bar
        self.last_bar = ""
        self.log.write(text + "\n")
        if self.tty and self.bar_shown:
            self.console.write("\r\x1b[K")
            self.bar_shown = False
        self.console.write(self.prefix + text + "\n")
        self.console.flush()

    def close(self) -> None:
        if self.pending or self.last_bar:
            self._line(self.pending)
            self.pending = ""
        self.log.flush()


def run_command(
    command: list[str], log_file: Path, env: dict[str, str], console: IO[str] | None = None, cwd: Path | None = None
) -> int:
    """Run one command in `cwd`, in its own process group, teeing its output; end the group if we are stopped."""
    console = console if console is not None else sys.stdout
    full_env = {**os.environ, **env}
    command = [str(part) for part in command]
    with open(log_file, "a", encoding="utf-8") as handle, _signals_raise():
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        tee = Tee(handle, console)
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, start_new_session=True, cwd=cwd
        )
        assert process.stdout is not None
        fd = process.stdout.fileno()
        try:
            decoder = _decoder()
            while chunk := os.read(fd, 65536):
                tee.feed(decoder.decode(chunk))
            tee.feed(decoder.decode(b"", final=True))
            tee.close()
            return process.wait()
        except BaseException as exc:
            tee.close()
            end_group(process)
            reason = exc if isinstance(exc, StageInterrupted) else type(exc).__name__
            handle.write(f"[pipeline] stage stopped ({reason}); its process group was ended\n")
            raise
        finally:
            process.stdout.close()


def _decoder():  # type: ignore[no-untyped-def]
    import codecs

    return codecs.getincrementaldecoder("utf-8")(errors="replace")


__all__ = ["LOCK_NAME", "StageInterrupted", "Tee", "end_group", "run_command", "run_lock", "sweep_scratch"]
