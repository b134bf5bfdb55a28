"""A release can be used again: release -> datasets.load_dataset -> train -> predict -> evaluate, offline.

train, `train predict` and `evaluate` take a release folder, a manifest or a Hub dataset id through
one resolver (`fairforge.resolve`); the Hub case replaces only `datasets.load_dataset`'s download
with the same folder, as the Hub would serve it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from test_train_data import make_toy_manifest

from fairforge.balance.release import run_release
from fairforge.cli import main as cli
from fairforge.config.balance import ReleaseConfig
from fairforge.errors import ManifestError
from fairforge.manifest import read_manifest, write_manifest
from fairforge.resolve import kind_of, resolve_dataset
from fairforge.taxonomy import DEFAULT_TAXONOMY
from fairforge.train.run import load_config, train


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A released toy set with the three splits (its old `val` rows split into validation and test)."""
    root = tmp_path_factory.mktemp("roundtrip")
    manifest = make_toy_manifest(root / "dir", n=64, size=32, val=64)
    frame = read_manifest(manifest)
    held = frame.index[frame["split"] == "validation"]
    frame.loc[[r for j, r in enumerate(held) if (j // 2) % 2], "split"] = "test"  # both labels in each
    frame["source"] = "fairforge-synth"
    write_manifest(frame, manifest)
    run_release(root / "dir", root / "release", ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    return root / "release"


def test_release_train_predict_evaluate(release: Path, tmp_path: Path, tiny_cache, monkeypatch) -> None:
    import datasets

    monkeypatch.setenv("FAIRFORGE_CACHE", str(tmp_path / "cache"))
    loaded = datasets.load_dataset(str(release), cache_dir=str(tmp_path / "hf"))
    assert {s: len(d) for s, d in loaded.items()} == {"train": 64, "validation": 32, "test": 32}
    assert kind_of(str(release)) == "release"

    out = tmp_path / "run"
    train(load_config("tiny", [f"data.train=[{release}]", f"output_dir={out}", "data.resolution=32"]))
    best = json.loads((out / "best" / "metrics.json").read_text())
    assert best["val/auc"] > 0.9  # validated on the release's validation split

    pred = tmp_path / "pred.parquet"
    args = ["train", "predict", "--checkpoint", str(out), "--manifest", str(release), "--split", "test"]
    assert cli([*args, "--out", str(pred)]) == 0
    scores = pd.read_parquet(pred)
    assert len(scores) == 32 and roc_auc_score(scores["label"], scores["score"]) > 0.9

    # the same release as a Hub dataset id: only the download is replaced
    real_load = datasets.load_dataset
    monkeypatch.setattr(
        datasets, "load_dataset", lambda spec, **kw: real_load(str(release) if spec == "someone/toy" else spec, **kw)
    )
    hub_pred = tmp_path / "hub.parquet"
    assert cli(["train", "predict", "--checkpoint", str(out), "--manifest", "someone/toy", "--split", "test",
                "--out", str(hub_pred)]) == 0  # fmt: skip
    assert pd.read_parquet(hub_pred)["score"].round(5).tolist() == scores["score"].round(5).tolist()

    # evaluate: the predictions as written, and ids + scores against the release (labels from the data)
    assert cli(["evaluate", "--predictions", str(pred), "--out", str(tmp_path / "ev"), "--no-plots"]) == 0
    bare = tmp_path / "bare.parquet"
    scores[["id", "score"]].to_parquet(bare)
    assert cli(["evaluate", "--predictions", str(bare), "--dataset", str(release), "--out", str(tmp_path / "ev2"),
                "--no-plots"]) == 0  # fmt: skip
    first = json.loads((tmp_path / "ev" / "report.json").read_text())
    second = json.loads((tmp_path / "ev2" / "report.json").read_text())
    assert first["n"] == second["n"] == 32
    assert first["overall"]["auc"] == pytest.approx(second["overall"]["auc"])


def test_the_resolver_reads_a_release_once_and_names_bad_input(release: Path, tmp_path: Path) -> None:
    frame = resolve_dataset(release, cache=tmp_path / "c")
    assert len(frame) == 128 and set(frame["split"]) == {"train", "validation", "test"}
    assert (Path(frame.attrs["root"]) / frame["path"].iloc[0]).is_file()
    again = resolve_dataset(release, cache=tmp_path / "c")  # reused, not rewritten
    assert again.attrs["file"] == frame.attrs["file"]
    with pytest.raises(ManifestError, match="not a manifest .* a release folder .* or a Hub dataset id"):
        resolve_dataset(tmp_path / "nothing-here" / "x y")
