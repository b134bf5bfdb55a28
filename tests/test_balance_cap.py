"""Balancing gives exactly the target per cell and method; the rest becomes the deficits table."""

from __future__ import annotations

import pandas as pd
import pytest
from test_balance_lib import config, make_set

from fairforge.balance.cap import cap, deficits, method_targets, target_cells, targets
from fairforge.balance.run import inherit_cells, run_balance
from fairforge.config import PipelineConfig, validate
from fairforge.errors import ConfigError
from fairforge.taxonomy import DEFAULT_TAXONOMY


@pytest.mark.parametrize(
    ("total", "mix", "expected"),
    [
        (10, {"diffusion": 0.5, "sbi": 0.25, "inswapper": 0.25}, {"diffusion": 5, "sbi": 3, "inswapper": 2}),
        (3, {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}),
        (7, {"a": 2, "b": 1}, {"a": 5, "b": 2}),
        (1, {"a": 1, "b": 1}, {"a": 1, "b": 0}),
    ],
)
def test_method_targets_sum_to_the_cell_target(total, mix, expected):
    assert method_targets(total, mix) == expected
    assert sum(method_targets(total, mix).values()) == total


def test_cap_keeps_exactly_the_target_and_reports_deficits():
    cfg = config(
        target_per_cell=4, method_mix={"diffusion": 1, "sbi": 1}, with_age=False, cells=["male-Asian", "female-Black"]
    )
    rows = [{"id": f"d{i}", "gender": "male", "race": "Asian", "age": "20-29", "method": "diffusion"} for i in range(5)]
    rows += [{"id": f"s{i}", "gender": "male", "race": "Asian", "age": "60-69", "method": "sbi"} for i in range(3)]
    rows += [{"id": f"f{i}", "gender": "female", "race": "Black", "age": "3-9", "method": "sbi"} for i in range(1)]
    rows += [{"id": "x", "gender": "female", "race": "White", "age": "3-9", "method": "sbi"}]
    frame = pd.DataFrame(rows)
    kept, rejects, table = cap(frame, cfg.balance, DEFAULT_TAXONOMY)
    assert frame.loc[kept, "id"].tolist() == ["d0", "d1", "s0", "s1", "f0"]  # first in input order
    assert dict(zip(frame.loc[rejects.index, "id"], rejects["reason"])) == {
        "d2": "surplus",
        "d3": "surplus",
        "d4": "surplus",
        "s2": "surplus",
        "x": "not_targeted",
    }
    out = deficits(table)
    assert out.to_dict("records") == [  # never made: no split known, generate picks it
        {"gender": "female", "race": "Black", "age": "unknown", "method": "diffusion", "split": None, "missing": 2},
        {"gender": "female", "race": "Black", "age": "unknown", "method": "sbi", "split": None, "missing": 1},
    ]
    assert list(out.columns) == ["gender", "race", "age", "method", "split", "missing"]
    assert str(out["missing"].dtype) == "int64"


def test_cap_keeps_each_splits_share_and_tops_up_in_that_split():
    """A rejected validation face is replaced by a validation face, and the deficit says so."""
    cfg = config(target_per_cell=10, method_mix={"diffusion": 1}, with_age=False, cells=["male-Asian"])
    splits = ["train"] * 8 + ["validation", "test"] + ["train"] * 3
    made = pd.DataFrame(
        [
            {"id": f"d{i}", "gender": "male", "race": "Asian", "age": "20-29", "method": "diffusion", "split": s}
            for i, s in enumerate(splits)
        ]
    )
    alive = made[made["id"] != "d8"]  # the validation face failed verification
    kept, rejects, table = cap(alive, cfg.balance, DEFAULT_TAXONOMY, made=made)
    assert made.loc[kept, "split"].value_counts().to_dict() == {"train": 8, "test": 1}
    assert set(made.loc[rejects.index, "id"]) == {"d10", "d11", "d12"}  # extra train faces do not fill it
    assert deficits(table).to_dict("records") == [
        {"gender": "male", "race": "Asian", "age": "unknown", "method": "diffusion", "split": "validation", "missing": 1}
    ]


def test_cells_follow_generate_and_groups_expand_over_ages():
    cfg = validate(PipelineConfig, {"generate": {"cells": ["female-Black"], "ages": ["0-2", "70+"]}})
    assert target_cells(inherit_cells(cfg), DEFAULT_TAXONOMY) == [
        ("female", "Black", "0-2"),
        ("female", "Black", "70+"),
    ]
    no_age = validate(PipelineConfig, {"generate": {"with_age": False, "cells": ["male-White"]}})
    assert target_cells(inherit_cells(no_age), DEFAULT_TAXONOMY) == [("male", "White", "unknown")]
    own = validate(PipelineConfig, {"generate": {"cells": ["male-White"]}, "balance": {"cells": ["female-Asian-3-9"]}})
    assert target_cells(inherit_cells(own), DEFAULT_TAXONOMY) == [("female", "Asian", "3-9")]


def test_unknown_cell_in_config_is_named():
    with pytest.raises(ConfigError, match=r"balance.cells: \['male-Martian-20-29'\]"):
        targets(config(cells=["male-Martian-20-29"]).balance, DEFAULT_TAXONOMY)


def test_balance_gives_exactly_the_target_per_cell(tmp_path, tiny_cache):
    cells = {("male", "Asian", "20-29"): 5, ("female", "White", "30-39"): 3, ("female", "Black", "70+"): 1}
    make_set(tmp_path / "gen", cells, {"diffusion": 0, "sbi": 1})
    cfg = config(
        target_per_cell=4,
        method_mix={"diffusion": 1, "sbi": 1},
        cells=["male-Asian-20-29", "female-White-30-39", "female-Black-70+"],
        face={"detector": "manifest"},
        mix={"real_ratio": None},
    )
    result = run_balance(cfg, tmp_path / "gen", tmp_path / "out", progress=False)
    counts = result.manifest.groupby(["gender", "race", "age", "method"]).size().to_dict()
    assert counts == {
        ("female", "Black", "70+", "diffusion"): 1,
        ("female", "Black", "70+", "sbi"): 1,
        ("female", "White", "30-39", "diffusion"): 2,
        ("female", "White", "30-39", "sbi"): 2,
        ("male", "Asian", "20-29", "diffusion"): 2,
        ("male", "Asian", "20-29", "sbi"): 2,
    }
    saved = pd.read_parquet(tmp_path / "out" / "deficits.parquet")
    assert saved.to_dict("records") == [
        {"gender": "female", "race": "Black", "age": "70+", "method": "diffusion", "split": None, "missing": 1},
        {"gender": "female", "race": "Black", "age": "70+", "method": "sbi", "split": None, "missing": 1},
    ]
