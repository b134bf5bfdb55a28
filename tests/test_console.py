"""Console output: fairforge's own INFO lines, the libraries' only with -v; calm progress bars in log files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging, os, sys
from fairforge.cli import setup_console
setup_console(sys.argv[1] == "verbose")
logging.getLogger("timm.models._builder").info("timm info line")
logging.getLogger("accelerate.utils").info("accelerate info line")
logging.getLogger("matplotlib.font_manager").warning("Matplotlib is building the font cache")
logging.getLogger("fairforge.evaluate").info("fairforge info line")
logging.getLogger("accelerate").warning("accelerate warning line")
from tqdm.auto import tqdm
bar = tqdm(total=1, file=open(os.devnull, "w"))
print("mininterval", bar.mininterval, os.environ.get("FAIRFORGE_VERBOSE"))
"""


def run(mode: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_MININTERVAL", "FAIRFORGE_VERBOSE")}
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)


def test_library_info_is_quiet_by_default():
    result = run("quiet")
    assert "fairforge info line" in result.stderr and "accelerate warning line" in result.stderr
    for line in ("timm info line", "accelerate info line", "font cache"):
        assert line not in result.stderr
    assert "mininterval 30.0 None" in result.stdout  # stderr is a pipe here: one refresh per 30 s


@pytest.mark.parametrize("line", ["timm info line", "accelerate info line", "font cache", "fairforge info line"])
def test_verbose_brings_the_libraries_back_and_reaches_child_processes(line):
    result = run("verbose")
    assert line in result.stderr
    assert result.stdout.strip().endswith(" 1")  # FAIRFORGE_VERBOSE=1 for the stages the pipeline starts
