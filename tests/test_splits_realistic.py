"""Splits at realistic size: person-disjoint, stratified, nothing dropped (plan + balance, no models).

8 cells x 100 pristine faces with 100 blends and 100 swaps each (generate's own plan), mixed with
an FF++-like set of 200 persons whose manipulated videos `t_s` show two persons each. Every
(source, label, method) must hold its fraction of each split to within 3 points, the independent
leak checker must find no person in two splits, and no row may be dropped.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from realistic_sets import (
    FRACTIONS,
    GENERATORS,
    TAXONOMY,
    as_manifest,
    eight_cells,
    ffpp_like,
    plan_rows,
    shares,
    worst_gap,
)

from fairforge.balance.leaks import check_no_leaks, components, leaks
from fairforge.balance.run import strata
from fairforge.balance.split import assign_splits
from fairforge.config.balance import SplitConfig
from fairforge.config.generate import GenerateConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.generate.plan import SBI_TARGET, PlanContext, build_plan, manifest_pool
from fairforge.manifest import write_manifest
from fairforge.splits import person_groups, split_counts, split_sequence


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> pd.DataFrame:
    return plan_rows(tmp_path_factory.mktemp("plan"), faces=100)


def _split_of(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["id"], frame["split"]))


def _face_of(frame: pd.DataFrame) -> pd.Series:
    """id -> the pristine face a row shows: a transformed SBI target shows the face it was made from."""
    target = frame["method"] == SBI_TARGET
    return pd.Series(frame["src_id"].where(target, frame["id"]).to_numpy(), index=frame["id"])


def test_the_plan_splits_the_faces_and_every_fake_stays_in_its_faces_split(synthetic):
    assert (synthetic["method"] != SBI_TARGET).sum() == 8 * 300  # plus the transformed targets blends pair with
    split = _split_of(synthetic)
    fakes = synthetic[synthetic["label"] == 1]
    assert (fakes["dst_id"].map(split) == fakes["split"]).all()
    assert (fakes["src_id"].map(split) == fakes["split"]).all()  # swaps: the source face too
    swaps = fakes[fakes["method"] == "inswapper"]
    assert (swaps["src_id"] != swaps["dst_id"]).all() and set(swaps["pair_rule"]) == {
        "same_cell",
        "same_gender_other_race",
        "any_cell",
    }
    face_of = _face_of(synthetic)
    assert (fakes["identity"] == fakes["dst_id"].map(face_of)).all()
    assert (fakes["src_identity"] == fakes["src_id"]).all()
    assert worst_gap(synthetic) < 3.0
    for _, cell in synthetic.groupby(["gender", "race", "method"]):  # every cell and method in every split
        assert set(cell["split"]) == set(FRACTIONS)
    assert leaks(synthetic).empty


def test_capped_fakes_keep_the_fractions(synthetic):
    """Balance keeps the first `target` rows per (cell, method): 50 of 100 fakes still follow 80/10/10."""
    capped = synthetic.groupby(["gender", "race", "age", "method"], sort=False).head(50)
    assert worst_gap(capped) < 3.0


@pytest.mark.parametrize("keep_existing", [True, False])
def test_balance_split_of_synthetic_plus_ffpp_like_holds(synthetic, keep_existing):
    ff = ffpp_like(200, frames=4)
    mixed = pd.concat([synthetic, ff], ignore_index=True)
    before = mixed["label"].value_counts().to_dict()
    out = mixed.assign(split=assign_splits(mixed, strata(mixed, True), SplitConfig(keep_existing=keep_existing)))
    assert out["label"].value_counts().to_dict() == before  # nothing dropped
    assert (out.loc[out["source"] == "fairforge-synth", "split"] == synthetic["split"].to_numpy()).all()
    if keep_existing:  # official splits kept as given
        assert (out.loc[out["source"] == "ffpp", "split"].to_numpy() == ff["split"].to_numpy()).all()
    assert leaks(out).empty
    check_no_leaks(out, "mixed")
    assert worst_gap(out) < 3.0, shares(out)
    # a fake t_s sits with both persons' real frames
    real = out[(out["source"] == "ffpp") & (out["label"] == 0)].set_index("identity")["split"]
    fakes = out[(out["source"] == "ffpp") & (out["label"] == 1)]
    assert (fakes["identity"].map(real.groupby(level=0).first()) == fakes["split"]).all()
    assert (fakes["src_identity"].map(real.groupby(level=0).first()) == fakes["split"]).all()


def test_ffpp_like_without_official_splits_is_split_by_person():
    ff = ffpp_like(200, frames=4, official=False)
    out = ff.assign(split=assign_splits(ff, strata(ff, False), SplitConfig()))
    assert out["split"].notna().all() and leaks(out).empty and worst_gap(out) < 3.0
    # t_s links t and s: 100 person groups of 2 persons (each with its reals and 8 fake videos)
    assert len(set(person_groups(ff))) == 100


def test_the_leak_checker_finds_a_person_in_two_splits():
    ff = ffpp_like(20, frames=2)
    fake = ff.index[(ff["method"] == "Deepfakes") & (ff["identity"] == "ffpp/000")][0]
    other = "test" if ff.at[fake, "split"] != "test" else "train"
    leaking = ff.copy()
    # the fake 000_001 moved away from the reals of 000 and 001
    leaking.loc[leaking["id"].str.contains("/000_001/"), "split"] = other
    found = leaks(leaking)
    assert len(found) == 1 and set(found.iloc[0]["persons"]) == {"ffpp/000", "ffpp/001"}
    with pytest.raises(ManifestError, match=r"1 person group\(s\) span several splits"):
        check_no_leaks(leaking, "set.parquet")
    # and it agrees with the splitter's own grouping on who belongs together
    assert len(set(components(ff))) == len(set(person_groups(ff)))


def test_official_splits_that_share_a_person_are_refused_with_the_way_out():
    ff = ffpp_like(20, frames=2)
    ff.loc[ff["id"] == "ffpp/real/001/000", "split"] = "test" if ff.at[0, "split"] != "test" else "train"
    with pytest.raises(ManifestError, match="keep_existing: false"):
        assign_splits(ff, strata(ff, False), SplitConfig())
    out = assign_splits(ff, strata(ff, False), SplitConfig(keep_existing=False))
    assert leaks(ff.assign(split=out)).empty


def test_swaps_from_a_real_pool_record_the_source_person_and_stay_in_its_split(tmp_path):
    ff = ffpp_like(200, frames=3)
    ff = ff.assign(age="20-29")  # the pool's cells
    write_manifest(ff, tmp_path / "pool" / "manifest.parquet", TAXONOMY)
    pool, _ = manifest_pool(str(tmp_path / "pool"), TAXONOMY)
    cfg = GenerateConfig(methods=["sbi", "inswapper"], pool={"source": "manifest", "manifest": str(tmp_path / "pool")})
    ctx = PlanContext(0, TAXONOMY, GENERATORS, "r")
    cells = sorted({c for c in pool.faces if pool.size(c) >= 6})
    plan = build_plan(cfg, tmp_path / "gen", ctx, cells, 20, None, pool)
    planned = as_manifest(plan.rows)
    fakes = planned[planned["label"] == 1]
    person_split = ff[ff["label"] == 0].groupby("identity")["split"].first()
    frame_person = dict(zip(ff["id"], ff["identity"]))
    assert (fakes["src_identity"] == fakes["src_id"].map(frame_person)).all()  # the person, not the frame
    assert (fakes["identity"] == fakes["dst_id"].map(_face_of(planned)).fillna(fakes["dst_id"]).map(frame_person)).all()
    assert (fakes["src_identity"].map(person_split) == fakes["split"]).all()
    assert (fakes["identity"].map(person_split) == fakes["split"]).all()
    assert leaks(pd.concat([ff, planned], ignore_index=True)).empty


def test_a_top_up_makes_its_deficits_in_their_split(tmp_path):
    cfg = GenerateConfig()
    ctx = PlanContext(0, TAXONOMY, GENERATORS, "r")
    cells = eight_cells()[:2]
    base = build_plan(cfg, tmp_path, ctx, cells, 20, None)
    base.save(tmp_path)
    deficits = pd.DataFrame(
        [
            {"gender": "male", "race": "Asian", "age": "20-29", "method": m, "split": "validation", "missing": 3}
            for m in ("diffusion", "sbi", "inswapper")
        ]
    )
    path = tmp_path / "deficits.parquet"
    deficits.to_parquet(path)
    from fairforge.generate.plan import read_deficits

    top = build_plan(cfg, tmp_path, ctx, cells, 20, read_deficits(path, TAXONOMY))
    new = top.rows
    assert (new["method"] != SBI_TARGET).sum() == 9 and set(new["split"]) == {"validation"}
    split = dict(zip(top.frame["id"], top.frame["split"]))
    fakes = new[new["label"] == 1]
    assert (fakes["dst_id"].map(split) == "validation").all() and (fakes["src_id"].map(split) == "validation").all()


def test_split_sequence_is_stable_and_follows_the_fractions():
    seq = split_sequence("male|Asian|20-29", 1000, FRACTIONS)
    assert seq[:100] == split_sequence("male|Asian|20-29", 100, FRACTIONS)  # a longer pool moves nothing
    assert split_sequence("male|Asian|20-29", 5, FRACTIONS, start=7) == seq[7:12]
    for n in (10, 25, 100, 1000):
        counts = split_counts("male|Asian|20-29", n, FRACTIONS)
        assert all(abs(counts[s] - f * n) < 2 for s, f in FRACTIONS.items())
    assert split_counts("x", 2, {"train": 1.0}) == {"train": 2}


def test_the_quick_start_keeps_every_method_in_every_split(tmp_path):
    """The tiny preset's plan (16 cells x 2 faces, 50/25/25): every method in every split, no leak."""
    from fairforge.config import load_stage_config
    from fairforge.generate.plan import config_cells

    config = load_stage_config(Path(__file__).resolve().parents[1] / "pipelines.yaml", "tiny", [])
    gen = config.generate
    ctx = PlanContext(0, TAXONOMY, GENERATORS, "r", splits=config.balance.split.fractions)
    plan = build_plan(gen, tmp_path, ctx, config_cells(gen, TAXONOMY), gen.count_per_cell, None)
    rows = as_manifest(plan.rows)
    assert set(rows["method"]) == {"diffusion", "sbi", SBI_TARGET, "inswapper"}
    for method, part in rows.groupby("method"):
        assert set(part["split"]) == {"train", "validation", "test"}, method
    out = rows.assign(split=assign_splits(rows, strata(rows, True), config.balance.split))
    assert (out["split"] == rows["split"]).all() and len(out) == len(rows)  # nothing moved, nothing dropped
    assert leaks(out).empty


def test_a_pool_whose_splits_leave_a_swap_no_source_is_named(tmp_path):
    rows = [
        {"id": f"p{i}", "path": f"{i}.png", "label": 0, "method": "real", "source": "mine", "split": s,
         "identity": f"mine/p{i}", "gender": "female", "race": "White", "age": "20-29"}
        for i, s in enumerate(["train", "validation", "test"])
    ]  # fmt: skip
    write_manifest(rows, tmp_path / "pool" / "manifest.parquet", TAXONOMY)
    pool, _ = manifest_pool(str(tmp_path / "pool"), TAXONOMY)
    cfg = GenerateConfig(
        methods=["inswapper"],
        pool={"source": "manifest", "manifest": str(tmp_path / "pool")},
        inswapper={"pairing": {"same_cell": 1}},
    )
    ctx = PlanContext(0, TAXONOMY, GENERATORS, "r")
    with pytest.raises(ConfigError, match="no split of cell female-White-20-29 has a source face"):
        build_plan(cfg, tmp_path / "gen", ctx, [("female", "White", "20-29")], 1, None, pool)
