"""Training: damaged checkpoints refused by name, 2-process checkpointing every step, the same weights
whether the tiny-model cache is cold or warm, and predict on an empty manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_data import make_toy_manifest

from fairforge.errors import ConfigError, ManifestError
from fairforge.manifest import write_manifest
from fairforge.train.run import load_config, train


def _tiny(manifest: Path, out: Path, *overrides: str):  # type: ignore[no-untyped-def]
    return load_config(
        "tiny",
        [
            f"data.train=[{manifest}]",
            f"output_dir={out}",
            "data.resolution=32",
            "data.num_workers=0",
            "max_steps=2",
            "log_with=[]",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("toy"), n=32, size=32)


@pytest.fixture(scope="module")
def checkpointed(toy: Path, tmp_path_factory: pytest.TempPathFactory, tiny_cache) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    train(_tiny(toy, out, "checkpoint_every=1"))
    return out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("state-json", r"trainer_state.json is not a trainer state"),
        ("truncated-weights", r"model.safetensors is unreadable"),
        ("no-optimizer", r"optimizer.bin is missing"),
        ("bad-rng", r"random_states_0.pkl is unreadable"),
        ("no-rng", r"random_states_0.pkl is missing"),
    ],
)
def test_resume_refuses_a_damaged_checkpoint_by_name(
    checkpointed: Path, toy: Path, tmp_path: Path, damage: str, message: str
) -> None:
    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    step = out / "checkpoints" / "step_00000001"
    if damage == "state-json":
        (step / "trainer_state.json").write_text("{not json")
    elif damage == "truncated-weights":
        data = (step / "model.safetensors").read_bytes()
        (step / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "no-optimizer":
        (step / "optimizer.bin").unlink()
    elif damage == "bad-rng":
        data = (step / "random_states_0.pkl").read_bytes()
        (step / "random_states_0.pkl").write_bytes(data[: len(data) // 2])
    else:
        (step / "random_states_0.pkl").unlink()
    with pytest.raises(ConfigError, match=rf"--resume {step}: damaged checkpoint: {message}"):
        train(_tiny(toy, out, "checkpoint_every=1"), resume=str(step))


def test_predict_on_an_empty_manifest_is_a_named_error(checkpointed: Path, toy: Path, tmp_path: Path) -> None:
    from fairforge.cli import main

    empty = write_manifest([], tmp_path / "empty" / "manifest.parquet")
    with pytest.raises(ManifestError, match="has no rows to score"):
        from fairforge.train.predict import predict_manifest

        predict_manifest(checkpointed, [str(empty)], tmp_path / "p.parquet")
    assert main(["train", "predict", "--checkpoint", str(checkpointed), "--manifest", str(empty), "--out", "x"]) == 2


def test_cold_and_warm_tiny_cache_train_bitwise_equal_weights(toy: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FAIRFORGE_CACHE", str(cache))  # empty: the tiny backbone is built inside the run
    threads = torch.get_num_threads()
    train(_tiny(toy, tmp_path / "cold"))
    assert (cache / "tiny").is_dir() and torch.get_num_threads() == threads
    train(_tiny(toy, tmp_path / "warm"))
    cold = load_file(str(tmp_path / "cold" / "final" / "model.safetensors"))
    warm = load_file(str(tmp_path / "warm" / "final" / "model.safetensors"))
    assert cold.keys() == warm.keys()
    for key in cold:
        assert torch.equal(cold[key], warm[key]), key


def test_tiny_build_leaves_random_state_and_threads_alone(tmp_path: Path, monkeypatch) -> None:
    import random

    import numpy as np

    from fairforge.tiny import ensure

    monkeypatch.setenv("FAIRFORGE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    expected = (torch.rand(4), random.random(), np.random.rand())
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    ensure("timm")  # cold: builds, seeding torch inside
    got = (torch.rand(4), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


# ------------------------------------------------------------------------------------------------
# two processes, a checkpoint at every step
# ------------------------------------------------------------------------------------------------
def _config(manifest: Path, out: Path) -> dict:
    return {
        "method": "erm",
        "output_dir": str(out),
        "model": {"backbone": "test_efficientnet_gn", "heads": {"cls": 1.0}},
        "data": {"train": [str(manifest)], "resolution": 32, "batch_size": 2, "num_workers": 0},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "epochs": 1,
        "max_steps": 4,
        "checkpoint_every": 1,
        "keep_checkpoints": None,
        "log_with": [],
    }


def _train_in_two(config: dict) -> None:
    from accelerate import PartialState

    from fairforge.config import load_model
    from fairforge.config.train import TrainConfig

    torch.set_num_threads(1)
    train(load_model(TrainConfig, data=config))
    state = PartialState()
    if state.is_main_process:
        Path(config["output_dir"], "processes.json").write_text(json.dumps(state.num_processes))


def test_two_processes_checkpoint_every_step_without_a_race(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path / "data", n=16, size=32)
    runs = [_config(manifest, tmp_path / f"run{k}") for k in range(3)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, __file__, json.dumps(runs)], check=True, timeout=600, env=env)
    for config in runs:
        out = Path(config["output_dir"])
        assert json.loads((out / "processes.json").read_text()) == 2
        steps = sorted(p.name for p in (out / "checkpoints").iterdir())
        assert steps == [f"step_{s:08d}" for s in range(1, 5)]  # no `.tmp-step_*` left
        for step in steps:
            folder = out / "checkpoints" / step
            names = {p.name for p in folder.iterdir()}
            assert {"random_states_0.pkl", "random_states_1.pkl", "trainer_state.json"} <= names, step


if __name__ == "__main__":  # a fresh interpreter forks the two processes (see test_train_dist.py)
    from accelerate import debug_launcher

    for run in json.loads(sys.argv[1]):
        debug_launcher(partial(_train_in_two, run), num_processes=2)
