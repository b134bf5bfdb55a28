"""The CLI: every stage has a subcommand with --help; `python -m fairforge` works."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fairforge.cli import build_parser, main

COMMANDS = ["import", "generate", "balance", "release", "train", "evaluate", "pipeline"]


def test_every_stage_has_a_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: fairforge" in capsys.readouterr().out


def test_python_dash_m_fairforge():
    out = subprocess.run([sys.executable, "-m", "fairforge", "--help"], capture_output=True, text=True, check=True)
    assert "generate" in out.stdout and "evaluate" in out.stdout
