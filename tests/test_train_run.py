"""The trainer end to end on toy manifests: it learns, resumes exactly, predicts, and names bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score
from test_train_data import make_toy_manifest

from fairforge.cli import main as cli
from fairforge.config import load_model
from fairforge.config.train import TrainConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.train.run import load_config, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_manifest(tmp_path_factory.mktemp("toy"), n=64, size=32, val=32)


def _tiny(toy: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(
        "tiny",
        [f"data.train=[{toy}]", f"output_dir={out}", "data.resolution=32", *overrides],
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_tiny_run_learns_the_toy_task_and_predict_writes_the_contract(toy: Path, tmp_path: Path, tiny_cache) -> None:
    out = tmp_path / "run"
    train(_tiny(toy, out, "log_with=[tensorboard]"))
    best = json.loads((out / "best" / "metrics.json").read_text())
    assert best["val/auc"] > 0.95
    assert {"val/F_FPR", "val/F_OAE", "val/F_DP", "val/F_MEO"} <= set(best)
    card = (out / "README.md").read_text()
    assert "manifest.parquet" in card and "sha256" in card and "method: ddfg" in card
    assert list(out.glob("**/events.out.tfevents.*")), "TensorBoard logs"

    pred_file = tmp_path / "pred.parquet"
    assert cli(["train", "predict", "--checkpoint", str(out), "--manifest", str(toy), "--out", str(pred_file)]) == 0
    pred = pd.read_parquet(pred_file)
    assert list(pred.columns) == ["id", "label", "score", "gender", "race", "age", "source", "method", "video"]
    manifest = pd.read_parquet(toy if toy.suffix == ".parquet" else toy / "manifest.parquet")

    def plain(values: pd.Series) -> list[object]:
        return [None if pd.isna(v) else v for v in values]

    expected = [None if pd.isna(i) else f"{i}/{m}" for i, m in zip(manifest["identity"], manifest["method"])]
    assert plain(pred["video"]) == expected  # one person under one method: a video for video-level metrics
    assert len(pred) == 96 and pred["score"].between(0, 1).all()
    assert roc_auc_score(pred["label"], pred["score"]) > 0.95


def test_resume_mid_epoch_equals_uninterrupted(toy: Path, tmp_path: Path, tiny_cache) -> None:
    common = (
        "deterministic=true",
        "checkpoint_every=3",
        "keep_checkpoints=null",
        "model.drop_rate=0.2",  # stochastic layers and augmentations must replay exactly too
        "data.augment.hflip=0.5",
        "data.augment.color_jitter=0.2",
    )
    full = tmp_path / "full"
    train(_tiny(toy, full, *common))  # 2 epochs x 8 updates, checkpoints at 3, 6, 9, ...
    expected = _weights(full / "final")

    resumed = tmp_path / "resumed"  # as if killed after update 3 (epoch 0, batch 3)
    train(_tiny(toy, resumed, *common), resume=str(full / "checkpoints" / "step_00000003"))
    later = tmp_path / "later"  # as if killed after update 9 (epoch 1, batch 1): `--resume latest`
    shutil.copytree(full / "checkpoints" / "step_00000009", later / "checkpoints" / "step_00000009")
    train(_tiny(toy, later, *common), resume="latest")
    for run in (resumed, later):
        got = _weights(run / "final")
        assert all(torch.equal(got[k], expected[k]) for k in expected), run.name
    state = json.loads((later / "checkpoints" / "step_00000016" / "trainer_state.json").read_text())
    assert state["trainer"]["step"] == 16 and state["trainer"]["epoch"] == 2


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_weights(toy: Path, tmp_path: Path, tiny_cache) -> None:
    """A real SIGKILL after the checkpoint at update 5, then `--resume latest` in a new process."""
    args = [
        sys.executable,
        str(REPO / "train" / "run.py"),
        "--config",
        "tiny",
        "--set",
        f"data.train=[{toy}]",
        "--set",
        "data.resolution=32",
        "--set",
        "deterministic=true",
        "--set",
        "checkpoint_every=5",
        "--set",
        "epochs=1",
    ]
    env = {**os.environ, "FAIRFORGE_CACHE": str(tiny_cache)}
    subprocess.run([*args, "--set", f"output_dir={tmp_path / 'full'}"], env=env, check=True, capture_output=True)
    victim = subprocess.Popen([*args, "--set", f"output_dir={tmp_path / 'killed'}"], env=env, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "checkpoints" / "step_00000005"
    deadline = time.time() + 120
    while not checkpoint.is_dir() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert checkpoint.is_dir()
    assert not (tmp_path / "killed" / "final").exists() or victim.returncode == 0
    subprocess.run(
        [*args, "--set", f"output_dir={tmp_path / 'killed'}", "--resume", "latest"],
        env=env,
        check=True,
        capture_output=True,
    )
    expected, got = _weights(tmp_path / "full" / "final"), _weights(tmp_path / "killed" / "final")
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_bad_config_errors_name_the_key(toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"optimizer.rho: expected float, got 'abc'"):
        _tiny(toy, tmp_path, "optimizer.rho=abc")
    with pytest.raises(ConfigError, match=r"data.batchsize: unknown key"):
        _tiny(toy, tmp_path, "data.batchsize=3")
    with pytest.raises(ConfigError, match=r"method: unknown method 'nope'"):
        train(_tiny(toy, tmp_path, "method=nope"))
    with pytest.raises(ConfigError, match=r"optimizer.name: method ddfg trains with SAM"):
        train(_tiny(toy, tmp_path, "optimizer.name=adam"))
    with pytest.raises(ConfigError, match=r"model.backbone: 'no_such_net' is neither"):
        train(_tiny(toy, tmp_path, "model.backbone=no_such_net"))
    with pytest.raises(ConfigError, match=r"--resume latest: no checkpoint under"):
        train(_tiny(toy, tmp_path / "empty"), resume="latest")
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_config(str(tmp_path / "missing.yaml"))
    # through the CLI: one clean line, exit status 2
    assert cli(["train", "--config", "tiny", "--set", "data.train=[]"]) == 2
    assert "fairforge train: error: data.train: no manifest given" in capsys.readouterr().err


def test_missing_manifest_and_corrupt_image_are_named(tmp_path: Path, tiny_cache) -> None:
    with pytest.raises(ManifestError, match=r"nowhere.parquet: manifest not found"):
        train(load_model(TrainConfig, data={"data": {"train": [str(tmp_path / "nowhere.parquet")]}}))
    manifest = make_toy_manifest(tmp_path / "data", n=16, size=32)
    (tmp_path / "data" / "img" / "0005.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ManifestError, match=r"manifest.parquet row 5 column 'path': cannot read image"):
        train(_tiny(manifest, tmp_path / "strict", "epochs=1"))
    out = tmp_path / "lenient"
    train(_tiny(manifest, out, "epochs=1", "data.skip_bad=true"))
    assert json.loads((out / "skipped.json").read_text()) == ["toy-0005"]
    assert (out / "final" / "model.safetensors").is_file()


def test_shipped_configs_validate() -> None:
    for name in ("ddfg", "erm", "tiny"):
        cfg = load_config(name)
        assert cfg.method in ("ddfg", "erm")
    assert load_config("ddfg").optimizer.name == "sam" and TrainConfig().method == "ddfg"
    assert np.isclose(load_config("erm").model.heads.group, 0.0)


def test_selection_rules() -> None:
    from fairforge.config.train import SelectConfig
    from fairforge.train.validate import selection_score

    flat = {"val/auc": 0.9, "val/F_FPR": 12.0, "val/F_DP": 3.0}
    assert selection_score(flat, SelectConfig(rule="auc")) == 0.9
    assert selection_score(flat, SelectConfig(rule="auc_under_fairness", metric="F_FPR", bound=10.0)) is None
    assert selection_score(flat, SelectConfig(rule="auc_under_fairness", metric="F_DP", bound=10.0)) == 0.9
    assert selection_score({"val/auc": None}, SelectConfig()) is None
