"""Mixing with real data and identity-disjoint, stratified splits (planted shared identities)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from test_balance_lib import config, face_like, make_set, row, write_set

from fairforge.balance.leaks import leaks
from fairforge.balance.run import run_balance, strata
from fairforge.balance.split import assign_splits
from fairforge.config.balance import SplitConfig
from fairforge.errors import ManifestError
from fairforge.manifest import read_manifest
from fairforge.splits import person_groups

KEYS = ("id", "identity", "src_identity", "src_id", "dst_id")


def splits_per_key(frame: pd.DataFrame) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for record in frame.to_dict("records"):
        for column in KEYS:
            if isinstance(record.get(column), str):
                seen[record[column]].add(record["split"])
    return seen


def planted_frame(n_people: int = 60) -> pd.DataFrame:
    """Real people with several frames each, real fakes swapping two people, synthetic faces with
    SBI fakes of themselves and swaps that chain three synthetic faces together."""
    rng = np.random.default_rng(0)
    rows = []
    genders, races = ["male", "female"], ["Asian", "White", "Black", "Others"]
    for p in range(n_people):
        g, r = genders[p % 2], races[p % 4]
        rows += [
            {"id": f"real-{p}-{k}", "identity": f"p{p}", "label": 0, "gender": g, "race": r}
            for k in range(int(rng.integers(1, 4)))
        ]
    for k in range(20):  # FF++-style fakes: target video of person a, face of person b
        a, b = rng.choice(n_people, 2, replace=False)
        rows.append(
            {
                "id": f"fake-{k}",
                "src_id": f"p{b}",
                "dst_id": f"p{a}",
                "label": 1,
                "gender": genders[a % 2],
                "race": races[a % 4],
            }
        )
    for i in range(40):
        g, r = genders[i % 2], races[i % 4]
        rows.append({"id": f"syn-{i}", "label": 0, "gender": g, "race": r})
        rows.append({"id": f"sbi-{i}", "src_id": f"syn-{i}", "dst_id": f"syn-{i}", "label": 1, "gender": g, "race": r})
    for i in range(0, 39, 3):  # chains: syn-i -> syn-(i+1) -> syn-(i+2)
        rows.append(
            {
                "id": f"swap-{i}a",
                "src_id": f"syn-{i}",
                "dst_id": f"syn-{i + 1}",
                "label": 1,
                "gender": "male",
                "race": "Asian",
            }
        )
        rows.append(
            {
                "id": f"swap-{i}b",
                "src_id": f"syn-{i + 1}",
                "dst_id": f"syn-{i + 2}",
                "label": 1,
                "gender": "male",
                "race": "Asian",
            }
        )
    frame = pd.DataFrame(rows)
    frame["age"] = "20-29"
    return frame


def test_no_identity_crosses_splits_and_strata_follow_the_fractions():
    frame = planted_frame()
    frame["split"] = assign_splits(frame, strata(frame, with_age=False), SplitConfig())
    assert all(len(s) == 1 for s in splits_per_key(frame).values())
    groups = person_groups(frame)
    chain = frame.index[frame["id"].isin(["syn-0", "syn-1", "syn-2", "swap-0a", "swap-0b", "sbi-0", "sbi-2"])]
    assert len(set(groups[chain])) == 1
    share = frame["split"].value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.08 and share["validation"] > 0.04 and share["test"] > 0.04
    for label in (0, 1):  # stratified: each label is spread over the splits too
        assert frame.loc[frame["label"] == label, "split"].nunique() == 3
    assert leaks(frame).empty


def test_a_given_split_pulls_the_whole_person_and_conflicts_are_named():
    frame = planted_frame().assign(source="ffpp")
    frame["split"] = None
    frame.loc[frame["id"] == "real-0-0", "split"] = "test"
    out = assign_splits(frame, strata(frame, False), SplitConfig())
    assert set(out[frame["identity"] == "p0"]) == {"test"}
    frame.loc[frame["id"] == "syn-0", "split"] = "train"
    frame.loc[frame["id"] == "sbi-0", "split"] = "val"  # the old name is read as validation
    with pytest.raises(ManifestError, match=r"share a person but their splits are \['train', 'validation'\]"):
        assign_splits(frame, strata(frame, False), SplitConfig())
    # re-splitting by person ignores the given real splits
    out = assign_splits(frame, strata(frame, False), SplitConfig(keep_existing=False))
    assert leaks(frame.assign(split=out)).empty


def test_balance_mixes_real_data_at_the_ratio_identity_disjointly(tmp_path, tiny_cache):
    cells = {("male", "Asian", "20-29"): 6, ("female", "Black", "40-49"): 6}
    make_set(tmp_path / "gen", cells, {"diffusion": 0, "sbi": 1})
    real_rows, images = [], {}
    for p in range(12):  # 12 people x 3 frames; person p3's face is also swapped into p7's video
        for k in range(3):
            rid = f"ffpp-{p}-{k}"
            g, r = ("male", "White") if p % 2 else ("female", "Asian")
            real_rows.append(row(rid, source="ffpp", method="real", identity=f"p{p}", gender=g, race=r, age=None))
            images[rid] = face_like(1000 + 3 * p + k, 64)
    real_rows.append(
        row(
            "ffpp-swap",
            source="ffpp",
            method="Deepfakes",
            label=1,
            src_id="p3",
            dst_id="p7",
            gender="male",
            race="White",
            age=None,
        )
    )
    images["ffpp-swap"] = face_like(999, 64)
    write_set(tmp_path / "real", real_rows, images)
    cfg = config(
        target_per_cell=8,
        method_mix={"diffusion": 1, "sbi": 1},
        cells=["male-Asian-20-29", "female-Black-40-49"],
        mix={"real_ratio": 0.75},
    )
    result = run_balance(cfg, tmp_path / "gen", tmp_path / "out", real=[tmp_path / "real"], progress=False)
    manifest = read_manifest(tmp_path / "out", check_files=True)  # every path resolves under DIR
    synthetic = manifest[manifest["source"] == "fairforge-synth"]
    real = manifest[manifest["source"] == "ffpp"]
    assert len(synthetic) == 16 and len(real) == 12  # 0.75 real rows per synthetic row
    assert manifest["path"].str.startswith("images/").all()
    assert all(len(s) == 1 for s in splits_per_key(manifest).values())
    assert set(manifest["split"]) <= {"train", "validation", "test"} and manifest["split"].notna().all()
    assert leaks(manifest).empty and len(result.rejected.query("reason == 'split_crossing'")) == 0
    assert len(result.manifest) == len(manifest)
