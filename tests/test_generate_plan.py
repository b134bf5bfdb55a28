"""The generate plan: stable seeds and ids, cells, prompts, pairing, top-ups (no models needed)."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from fairforge.config import validate
from fairforge.config.generate import GenerateConfig
from fairforge.config.pipeline import PipelineConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.generate.plan import (
    SBI_TARGET,
    PlanContext,
    build_plan,
    config_cells,
    derive_seed,
    diffusion_pool,
    finish_request,
    load_plan,
    pair_source,
    read_deficits,
)
from fairforge.generate.prompts import sample_prompt
from fairforge.generate.sbi import target_is_transformed
from fairforge.taxonomy import Taxonomy

TAXONOMY = Taxonomy()
CELLS = ["male-Asian-20-29", "female-Black-30-39"]
SEED_0 = 41302385245076833  # derive_seed(0, (male, Asian, 20-29), 0, diffusion)
GENERATORS = {"diffusion": "tiny:diffusion", "sbi": "sbi", "inswapper": "inswapper_128:0123456789abcdef"}


ONE_SPLIT = {"train": 1.0, "validation": 0.0, "test": 0.0}


def _plan(tmp_path, cfg=None, deficits=None, count=3, cells=CELLS, splits=None):
    cfg = cfg or GenerateConfig()
    ctx = PlanContext(seed=0, taxonomy=TAXONOMY, generators=GENERATORS, render="r")
    if splits is not None:
        ctx.splits = splits
    return build_plan(cfg, tmp_path, ctx, config_cells(cfg, TAXONOMY, cells), count, deficits)


def test_seeds_are_stable_hashes_of_the_row():
    cell = ("male", "Asian", "20-29")
    # a fixed value: any change here changes every image of every released set
    assert derive_seed(0, cell, 0, "diffusion") == derive_seed(0, cell, 0, "diffusion", attempt=0)
    assert derive_seed(0, cell, 0, "diffusion") == SEED_0
    seeds = {
        derive_seed(s, cell, k, m, a) for s in (0, 1) for k in range(3) for m in ("diffusion", "sbi") for a in (0, 1)
    }
    assert len(seeds) == 24 and all(0 <= s < 2**63 for s in seeds)


def test_plan_has_one_row_per_image_and_is_idempotent(tmp_path):
    plan = _plan(tmp_path)
    everything = plan.rows
    assert everything["id"].is_unique
    targets = everything[everything["method"] == SBI_TARGET]
    rows = everything[everything["method"] != SBI_TARGET]
    assert len(rows) == 2 * 3 * 3
    assert Counter(rows["method"]) == {"diffusion": 6, "sbi": 6, "inswapper": 6}
    assert rows["seed"].is_unique
    assert list(rows["method"].unique()) == ["diffusion", "sbi", "inswapper"]  # pristine first
    # a blend whose target is transformed is paired with that target, planned as a real row just before it
    sbi = rows[rows["method"] == "sbi"]
    transformed = sbi["seed"].map(lambda seed: target_is_transformed(int(seed)))
    assert 0 < transformed.sum() < len(sbi) and len(targets) == transformed.sum()
    assert set(sbi.loc[transformed, "dst_id"]) == set(targets["id"]) and (targets["label"] == 0).all()
    assert (sbi.loc[~transformed, "dst_id"] == sbi.loc[~transformed, "src_id"]).all()
    order = everything["id"].tolist()
    for target in targets.itertuples():
        fake = sbi[sbi["dst_id"] == target.id].iloc[0]
        assert target.seed == fake["seed"] and target.src_id == fake["src_id"]
        assert order.index(target.id) == order.index(fake["id"]) - 1
    words = GenerateConfig().prompt.race_words
    for row in rows[rows["method"] == "diffusion"].itertuples():
        assert any(word in row.prompt for word in words[row.race]), row.prompt
    assert sbi["src_id"].isin(rows["id"]).all() and sbi["dst_id"].isin(everything["id"]).all()
    plan.save(tmp_path)
    again = _plan(tmp_path)
    assert again.ids == plan.ids and not again.changed
    # growing the count keeps every planned row (and its batch) and appends the new ones; with
    # several splits a swap whose split had no source face yet may take a new one (one split here)
    grow = tmp_path / "grow"
    first = _plan(grow, splits=ONE_SPLIT)
    first.save(grow)
    assert set(_plan(grow, count=4, splits=ONE_SPLIT).ids) > set(first.ids)
    bigger = _plan(tmp_path, count=4)
    assert set(plan.ids) - set(bigger.ids) <= set(rows.loc[rows["method"] == "inswapper", "id"])
    assert (bigger.rows["method"] != SBI_TARGET).sum() == 24
    old = bigger.frame[bigger.frame["id"].isin(plan.ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, load_plan(tmp_path), check_dtype=False)


def test_config_change_makes_new_ids(tmp_path):
    base = _plan(tmp_path)
    cfg = validate(GenerateConfig, {"diffusion": {"steps": 3}})
    changed = _plan(tmp_path / "other", cfg)
    diff_ids = lambda p: set(p.rows.loc[p.rows["method"] == "diffusion", "id"])  # noqa: E731
    assert not diff_ids(base) & diff_ids(changed)


def test_unknown_cells_and_placeholders_fail_before_work(tmp_path):
    with pytest.raises(ConfigError, match="--cells"):
        config_cells(GenerateConfig(), TAXONOMY, ["male-Martian-20-29"])
    with pytest.raises(ConfigError, match="age must be one of"):
        config_cells(GenerateConfig(), TAXONOMY, ["male-Asian-200"])
    with pytest.raises(ConfigError, match=r"generate\.prompt\.template: .*unknown placeholder.*hair"):
        validate(PipelineConfig, {"generate": {"prompt": {"template": "a photo of a {hair} person"}}})
    with pytest.raises(ConfigError, match="cell_templates"):
        _plan(tmp_path, validate(GenerateConfig, {"prompt": {"cell_templates": {"male-Martian": "a {gender}"}}}))
    assert config_cells(GenerateConfig(), TAXONOMY, ["female-White"]) == [("female", "White", a) for a in TAXONOMY.ages]


def test_prompts_vary_and_are_seeded():
    cfg = GenerateConfig().prompt
    cell = ("female", "Others", "70+")
    prompts = {sample_prompt(cfg, cell, s) for s in range(20)}
    assert len(prompts) > 10
    assert sample_prompt(cfg, cell, 3) == sample_prompt(cfg, cell, 3)
    assert all("woman" in p and "  " not in p for p in prompts)
    assert "girl" in sample_prompt(cfg, ("female", "White", "3-9"), 0)


def test_pairing_is_balanced_across_rules_and_cells(tmp_path):
    # one split: rules and cells are dealt over the whole pool (with splits, within each split)
    cfg = GenerateConfig()
    ctx = PlanContext(seed=0, taxonomy=TAXONOMY, generators=GENERATORS, render="r", splits=ONE_SPLIT)
    cells = config_cells(
        cfg, TAXONOMY, ["male-Asian-30-39", "male-White-30-39", "male-Black-30-39", "female-Asian-30-39"]
    )
    plan = build_plan(cfg, tmp_path, ctx, cells, 12, None)
    pool = diffusion_pool(plan.frame)
    swaps = plan.rows[
        (plan.rows["method"] == "inswapper") & (plan.rows["gender"] == "male") & (plan.rows["race"] == "Asian")
    ]
    assert Counter(swaps["pair_rule"]) == {"same_cell": 4, "same_gender_other_race": 4, "any_cell": 4}
    other_race = swaps[swaps["pair_rule"] == "same_gender_other_race"]
    assert Counter(other_race["src_cell"]) == {"male-White-30-39": 2, "male-Black-30-39": 2}
    assert (swaps["src_id"] != swaps["dst_id"]).all()
    rule, src_cell, src = pair_source(("male", "Asian", "30-39"), 0, 0, pool, {"same_cell": 1})
    assert rule == "same_cell" and src_cell == ("male", "Asian", "30-39") and src != pool.face(src_cell, 0)


def _deficits(tmp_path, rows, name="deficits.parquet"):
    path = tmp_path / name
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_top_up_makes_exactly_the_deficits_with_fresh_k(tmp_path):
    base = _plan(tmp_path)
    base.save(tmp_path)
    path = _deficits(
        tmp_path,
        {
            "gender": ["male", "female"],
            "race": ["Asian", "Black"],
            "age": ["20-29", "30-39"],
            "method": ["diffusion", "sbi"],
            "missing": [2, 1],
        },
    )
    deficits = read_deficits(path, TAXONOMY)
    top = _plan(tmp_path, deficits=deficits)
    rows = top.rows
    assert not set(rows["id"]) & set(base.ids)
    rows = rows[rows["method"] != SBI_TARGET]
    assert len(rows) == 3
    assert sorted(rows.loc[rows["method"] == "diffusion", "k"]) == [3, 4]
    assert rows.loc[rows["method"] == "sbi", "k"].tolist() == [3]
    top.save(tmp_path)
    # a restart of the same (unfinished) top-up makes the same rows, not new ones
    assert _plan(tmp_path, deficits=deficits).ids == top.ids
    # once finished, the same deficits again are a new round with fresh k
    finish_request(tmp_path, top.request)
    again = _plan(tmp_path, deficits=deficits)
    assert sorted(again.rows.loc[again.rows["method"] == "diffusion", "k"]) == [5, 6]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ({"gender": ["male"], "race": ["Asian"], "age": ["20-29"], "method": ["sbi"]}, "column 'missing'"),
        (
            {"gender": ["male"], "race": ["Martian"], "age": ["20-29"], "method": ["sbi"], "missing": [1]},
            "row 0 column 'race'",
        ),
        (
            {"gender": ["male"], "race": ["Asian"], "age": ["20-29"], "method": ["sbi"], "missing": [0]},
            "row 0 column 'missing'",
        ),
        (
            {"gender": ["male"], "race": ["Asian"], "age": ["20-29"], "method": ["gan"], "missing": [1]},
            "column 'method'",
        ),
    ],
)
def test_bad_deficits_name_file_row_and_column(tmp_path, rows, match):
    with pytest.raises(ManifestError, match=match):
        read_deficits(_deficits(tmp_path, rows), TAXONOMY)


def test_diffusion_label_switch_makes_whole_face_synthesis_fake(tmp_path):
    plan = _plan(tmp_path, validate(GenerateConfig, {"diffusion_label": "fake"}), count=1)
    assert (plan.rows["label"] == 1).all()
    assert (_plan(tmp_path / "real", count=1).rows.query("method == 'diffusion'")["label"] == 0).all()


def test_shards_split_the_plan_like_accelerate():
    from fairforge.generate.job import parse_shard, shard_slice

    items = list(range(10))
    parts = [shard_slice(items, i, 3) for i in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert parse_shard("2/16") == (2, 16) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
