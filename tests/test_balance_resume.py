"""A `fairforge balance` killed (SIGKILL) midway and rerun writes the same output as a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_balance_lib import make_set

from fairforge.cli import main

CELLS = {("male", "Asian", "20-29"): 10, ("female", "Black", "30-39"): 10}


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file the stage wrote, except its measurement cache (how it was filled may differ)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] != "cache"
    }


def balance_cmd(cfg: Path, gen: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fairforge",
        "balance",
        "--config",
        str(cfg),
        "--in",
        str(gen),
        "--out",
        str(out),
        "--no-progress",
    ]


@pytest.mark.slow
def test_kill_during_balance_then_rerun_gives_the_same_output(tmp_path, tiny_cache):
    make_set(tmp_path / "gen", CELLS, {"diffusion": 0, "sbi": 1})
    cfg = tmp_path / "pipelines.yaml"
    balance = {
        "classifiers": [{"path": "tiny:fairface", "arch": "resnet18", "image_size": 64}],
        "verify": {"match": []},
        "target_per_cell": 12,
        "method_mix": {"diffusion": 1, "sbi": 1},
        "cells": ["male-Asian-20-29", "female-Black-30-39"],
        "batch_size": 2,  # a cache shard every 8 images: the kill lands between shards
        "num_workers": 0,
        "identity": {"model": "tiny:arcface", "threshold": 0.99},
    }
    cfg.write_text(yaml.safe_dump({"balance": balance, "presets": {"tiny": {}}}))
    env = {**os.environ, "FAIRFORGE_CACHE": str(tiny_cache), "HF_HUB_OFFLINE": "1"}

    victim = subprocess.Popen(
        balance_cmd(cfg, tmp_path / "gen", tmp_path / "out"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out" / "cache").glob("*/shards/*.parquet")):
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no measurement shard appeared"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "out" / "manifest.parquet").exists()  # it died mid-measurement
    shards_before = len(list((tmp_path / "out" / "cache").glob("*/shards/*.parquet")))

    done = subprocess.run(balance_cmd(cfg, tmp_path / "gen", tmp_path / "out"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert main(balance_cmd(cfg, tmp_path / "gen", tmp_path / "clean")[3:]) == 0  # uninterrupted, in this process
    resumed, clean = outputs(tmp_path / "out"), outputs(tmp_path / "clean")
    assert sorted(resumed) == sorted(clean) and "manifest.parquet" in resumed
    assert [name for name in resumed if resumed[name] != clean[name]] == []
    assert len(list((tmp_path / "out" / "cache").glob("*/shards/*.parquet"))) > shards_before
