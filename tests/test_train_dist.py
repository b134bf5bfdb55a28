"""Two really synchronized CPU processes give the weights one process gives on the same global batch.

The two processes come from `accelerate.debug_launcher` (which forks), run in a fresh interpreter:
forking the pytest process after earlier tests ran multi-threaded convolutions can hang the
children in their first convolution (OpenMP's thread pool does not survive a fork).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from accelerate import PartialState, debug_launcher
from safetensors.torch import load_file
from test_train_data import make_toy_manifest

from fairforge.config import load_model
from fairforge.config.train import TrainConfig
from fairforge.train.run import train

REPO = Path(__file__).resolve().parents[1]


def _config(manifest: Path, out: Path, batch_size: int, optimizer: dict) -> dict:
    return {
        "method": "erm",
        "output_dir": str(out),
        # a norm layer without running statistics: BN would see half the batch per process
        "model": {"backbone": "test_efficientnet_gn", "heads": {"cls": 1.0, "group": 0.5}},
        "data": {"train": [str(manifest)], "resolution": 32, "batch_size": batch_size, "num_workers": 0},
        "optimizer": optimizer,
        "epochs": 1,
        "max_steps": 3,
        "log_with": [],
    }


def _train_and_report(config: dict, report: str) -> None:
    torch.set_num_threads(1)
    train(load_model(TrainConfig, data=config))
    state = PartialState()
    if state.is_main_process:
        Path(report).write_text(json.dumps({"num_processes": state.num_processes}))


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        {"name": "sam", "base": "sgd", "lr": 0.05, "momentum": 0.9, "rho": 0.05, "ascent": "global"},
    ],
    ids=["erm-sgd", "sam-global-ascent"],
)
def test_two_processes_equal_one_process_on_the_same_global_batch(tmp_path: Path, optimizer: dict) -> None:
    manifest = make_toy_manifest(tmp_path / "data", n=32, size=32)
    one = _config(manifest, tmp_path / "one", batch_size=8, optimizer=optimizer)
    _train_and_report(one, str(tmp_path / "one.json"))
    two = _config(manifest, tmp_path / "two", batch_size=4, optimizer=optimizer)
    subprocess.run([sys.executable, __file__, json.dumps(two), str(tmp_path / "two.json")], check=True, timeout=600)

    assert json.loads((tmp_path / "one.json").read_text())["num_processes"] == 1
    assert json.loads((tmp_path / "two.json").read_text())["num_processes"] == 2
    a = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4, msg=key)


@pytest.mark.slow
def test_documented_cpu_launch_command_runs_two_synchronized_processes(tmp_path: Path, tiny_cache) -> None:
    """The README's command for CPU-only machines: `accelerate launch --multi_gpu --num_processes 2`."""
    manifest = make_toy_manifest(tmp_path / "data", n=32, size=32, val=16)
    out = tmp_path / "run"
    command = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(REPO / "train" / "run.py"),
        "--config",
        "tiny",
        "--set",
        f"data.train=[{manifest}]",
        "--set",
        f"output_dir={out}",
        "--set",
        "data.resolution=32",
        "--set",
        "epochs=1",
    ]
    env = {**os.environ, "FAIRFORGE_CACHE": str(tiny_cache), "OMP_NUM_THREADS": "1"}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    final = out / "checkpoints" / "step_00000002"  # 32 rows / (batch 8 x 2 processes) = 2 updates
    assert sorted(p.name for p in final.glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]


if __name__ == "__main__":  # the fresh interpreter that launches the two processes
    debug_launcher(partial(_train_and_report, json.loads(sys.argv[1]), sys.argv[2]), num_processes=2)
