"""The closed loop stops when every cell is full and when max_rounds is hit, keeps every round's
table, resumes an interrupted top-up, and its deficits round-trip through `fairforge generate --top-up`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_balance_lib import config, face_like, make_set, row, write_set

from fairforge.balance.run import run_balance
from fairforge.config import PipelineConfig
from fairforge.manifest import read_manifest

CELLS = ["male-Asian-20-29", "female-White-30-39"]


class ContractTopUp:
    """A stand-in generator that follows the deficits contract exactly: for each row, `missing` new
    images of that cell and method. Its ids derive from the deficits file's bytes, so running the
    same file again resumes instead of duplicating (like generate's plan does)."""

    def __init__(self, gen_dir: Path, size: int = 96, fail_after: int | None = None) -> None:
        self.gen_dir, self.size, self.fail_after = gen_dir, size, fail_after
        self.calls: list[str] = []

    def __call__(self, deficits_path: Path) -> None:
        self.calls.append(str(deficits_path))
        deficits = pd.read_parquet(deficits_path)
        assert list(deficits.columns) == ["gender", "race", "age", "method", "split", "missing"]
        assert (deficits["missing"] > 0).all() and str(deficits["missing"].dtype) == "int64"
        tag = hashlib.sha256(deficits_path.read_bytes()).hexdigest()[:8]
        existing = read_manifest(self.gen_dir)
        rows = existing.drop(columns=[c for c in existing.columns if existing[c].isna().all()]).to_dict("records")
        images, made = {}, 0
        for d in deficits.to_dict("records"):
            for k in range(d["missing"]):
                id_ = f"{d['method']}-{d['gender']}-{d['race']}-{d['age']}-top{tag}-{k}"
                if id_ in set(existing["id"]):
                    continue
                if self.fail_after is not None and made >= self.fail_after:
                    self.fail_after = None
                    write_set(self.gen_dir, rows, images)
                    raise KeyboardInterrupt("killed mid top-up")
                label = 0 if d["method"] == "diffusion" else 1
                split = d["split"] if isinstance(d["split"], str) else None  # made in the split it is missing in
                rows.append(
                    row(id_, method=d["method"], label=label, gender=d["gender"], race=d["race"], age=d["age"], split=split)
                )
                images[id_] = face_like(int(hashlib.sha256(id_.encode()).hexdigest()[:8], 16), self.size)
                made += 1
        write_set(self.gen_dir, rows, images)


def loop_config(max_rounds: int = 3) -> PipelineConfig:
    return config(
        target_per_cell=4,
        method_mix={"diffusion": 1, "sbi": 1},
        cells=CELLS,
        face={"detector": "manifest"},
        loop={"until_full": True, "max_rounds": max_rounds},
        mix={"real_ratio": None},
    )


def short_set(folder: Path) -> Path:
    return make_set(
        folder, {("male", "Asian", "20-29"): 2, ("female", "White", "30-39"): 1}, {"diffusion": 0, "sbi": 1}
    )


def test_loop_stops_when_every_cell_is_full(tmp_path, tiny_cache):
    short_set(tmp_path / "gen")
    topup = ContractTopUp(tmp_path / "gen")
    result = run_balance(loop_config(), tmp_path / "gen", tmp_path / "out", topup=topup, progress=False)
    assert len(topup.calls) == 1
    assert result.rounds[["round", "made", "kept", "missing", "topped_up"]].to_dict("records") == [
        {"round": 0, "made": 6, "kept": 6, "missing": 2, "topped_up": True},
        {"round": 1, "made": 8, "kept": 8, "missing": 0, "topped_up": False},
    ]
    assert result.deficits.empty and len(result.manifest) == 8
    first = pd.read_parquet(tmp_path / "out" / "rounds" / "round-00" / "deficits.parquet")
    assert first.to_dict("records") == [
        {"gender": "female", "race": "White", "age": "30-39", "method": "diffusion", "split": None, "missing": 1},
        {"gender": "female", "race": "White", "age": "30-39", "method": "sbi", "split": None, "missing": 1},
    ]
    assert (tmp_path / "out" / "rounds" / "round-01" / "acceptance.parquet").is_file()
    assert "Closed-loop rounds" in (tmp_path / "out" / "report.md").read_text()


def test_loop_stops_after_max_rounds(tmp_path, tiny_cache):
    short_set(tmp_path / "gen")
    topup = ContractTopUp(tmp_path / "gen", size=32)  # every top-up image is too small: never full
    result = run_balance(loop_config(max_rounds=2), tmp_path / "gen", tmp_path / "out", topup=topup, progress=False)
    assert len(topup.calls) == 2
    assert list(result.rounds["round"]) == [0, 1, 2] and list(result.rounds["missing"]) == [2, 2, 2]
    assert set(result.rejected.loc[result.rejected["reason"] == "too_small", "id"].str.contains("top"))
    assert result.deficits["missing"].sum() == 2


def test_loop_resumes_an_interrupted_top_up(tmp_path, tiny_cache):
    short_set(tmp_path / "gen")
    topup = ContractTopUp(tmp_path / "gen", fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        run_balance(loop_config(), tmp_path / "gen", tmp_path / "out", topup=topup, progress=False)
    assert len(read_manifest(tmp_path / "gen")) == 7  # one of the two images was made
    result = run_balance(loop_config(), tmp_path / "gen", tmp_path / "out", topup=topup, progress=False)
    assert topup.calls[1] == topup.calls[0]  # the same top-up finished, not a new one asked
    assert len(read_manifest(tmp_path / "gen")) == 8 and result.deficits.empty
    short_set(tmp_path / "gen2")
    clean = run_balance(
        loop_config(), tmp_path / "gen2", tmp_path / "out2", topup=ContractTopUp(tmp_path / "gen2"), progress=False
    )
    assert sorted(result.manifest["id"]) == sorted(clean.manifest["id"])
    assert result.rounds.equals(clean.rounds)


@pytest.mark.slow
def test_deficits_round_trip_through_generate_top_up(tmp_path, tiny_cache):
    """The real generator makes exactly the deficits; the CLI loop stops when full."""
    from fairforge.cli import main

    pipeline = {
        "generate": {"cells": CELLS, "count_per_cell": 1, "methods": ["diffusion", "sbi"]},
        "balance": {
            "classifiers": [{"path": "tiny:fairface", "arch": "resnet18"}],
            "verify": {"match": []},
            "face": {"detector": "none"},
            "target_per_cell": 4,
            "method_mix": {"diffusion": 1, "sbi": 1},
            "cells": CELLS,
            "num_workers": 0,
            "mix": {"real_ratio": None},
        },
        "presets": {"tiny": {}},
    }
    cfg_file = tmp_path / "pipelines.yaml"
    cfg_file.write_text(yaml.safe_dump(pipeline))
    gen, out = tmp_path / "gen", tmp_path / "out"
    assert main(["generate", "--config", str(cfg_file), "--out", str(gen), "--no-progress"]) == 0
    made = read_manifest(gen)
    assert (made["method"] != "sbi_target").sum() == 4  # sbi_target: a blend's transformed target, its partner
    code = main(
        [
            "balance",
            "--config",
            str(cfg_file),
            "--in",
            str(gen),
            "--out",
            str(out),
            "--until-full",
            "--max-rounds",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    deficits = pd.read_parquet(out / "rounds" / "round-00" / "deficits.parquet")
    assert deficits["missing"].tolist() == [1, 1, 1, 1]
    grown = read_manifest(gen)
    partners = int((grown["method"] == "sbi_target").sum())
    grown = grown[grown["method"] != "sbi_target"]
    assert len(grown) == 8  # exactly the deficits were made
    assert grown.groupby(["gender", "method"]).size().tolist() == [2, 2, 2, 2]
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert list(rounds["missing"]) == [4, 0]
    balanced = read_manifest(out)
    kept_partners = balanced["method"] == "sbi_target"
    assert kept_partners.sum() <= partners  # each kept blend brings the real row it is paired with
    assert pd.read_parquet(out / "deficits.parquet").empty and (~kept_partners).sum() == 8
    fakes = balanced[balanced["label"] == 1]
    assert fakes["dst_id"].isin(balanced["id"]).all()
