"""The generate job on the tiny models, in this process: exact outputs, provenance, retries, top-ups, bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairforge.config import deep_merge, validate
from fairforge.config.generate import GenerateConfig
from fairforge.errors import ConfigError, FairforgeError, MissingModelError
from fairforge.generate import JobOptions, regenerate, run_generate
from fairforge.generate.output import read_rows
from fairforge.generate.plan import SBI_TARGET, derive_seed
from fairforge.manifest import file_sha256, read_manifest

CELLS = ["male-Asian-20-29", "female-Black-30-39"]
# CPU bytes depend on the thread count, so tests that compare runs pin it (see plan.py)
BASE = {
    "align": {"crop_size": 64},
    "diffusion": {"batch_size": 2},
    "num_threads": 1,
    "flush_every": 2,
    "count_per_cell": 3,
}
PROVENANCE = ("generator", "seed", "prompt", "negative_prompt", "steps", "guidance", "width", "height", "sha256")


def tiny_cfg(**updates) -> GenerateConfig:
    return validate(GenerateConfig, deep_merge(BASE, updates))


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def made(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("generate")
    summary = run_generate(tiny_cfg(), out, options=JobOptions(cells=CELLS, progress=False))
    return out, summary


def test_two_cells_three_samples_three_methods_make_exactly_those_images(made):
    out, summary = made
    manifest = read_manifest(out, check_files=True)
    partners = int((manifest["method"] == SBI_TARGET).sum())  # transformed SBI targets, real rows of their own
    sbi = manifest[manifest["method"] == "sbi"]
    assert partners == int((sbi["dst_id"] != sbi["src_id"]).sum()) > 0
    assert len(manifest) == 18 + partners and manifest["id"].is_unique
    made = manifest[manifest["method"] != SBI_TARGET]
    counts = Counter(zip(made["gender"], made["race"], made["age"], made["method"]))
    assert set(counts.values()) == {3} and len(counts) == 6
    assert summary["total"] == {"made": 18 + partners, "retried": 0, "failed": 0, "pending": 0}
    # exactly the manifest's images, nothing else (no orphans, no temporaries, no shards left)
    images = {p for p in files_under(out) if p.startswith("images/")}
    assert images == set(manifest["path"])
    assert not (out / "shards").exists() and not (out / "failed").exists()
    plan = pd.read_parquet(out / "plan.parquet")
    assert manifest["id"].tolist() == plan["id"].tolist()  # merged in plan order


def test_every_row_has_complete_provenance(made):
    out, _ = made
    manifest = read_manifest(out)
    for row in manifest.to_dict("records"):
        for column in PROVENANCE:
            assert row[column] is not None and not (isinstance(row[column], float) and np.isnan(row[column])), column
        assert row["source"] == "fairforge-synth" and row["domain"] == row["method"]
        assert (row["width"], row["height"]) == (64, 64)
        assert row["sha256"] == file_sha256(out / row["path"])
        params = json.loads(row["gen_params"])
        assert params["render"]["align"]["crop_size"] == 64
        if row["method"] == "diffusion":
            assert row["label"] == 0 and row["identity"] == row["id"]
            assert row["id"] in params["batch_ids"] and params["round"] == 0
            assert len(row["landmarks"]) == 136
        elif row["method"] == SBI_TARGET:
            assert row["label"] == 0 and row["src_id"] and row["identity"] == row["src_id"]
            assert json.loads(row["gen_params"])["sbi_target"]["transformed"] == "target"
        else:
            assert row["label"] == 1 and row["dst_id"] and row["src_id"]
            assert row["identity"] == (row["src_id"] if row["method"] == "sbi" else row["dst_id"])
    by_id = manifest.set_index("id")
    sbi = manifest[manifest["method"] == "sbi"]
    for fake in sbi.itertuples():  # the partner is the pristine face itself or its transformed target
        partner = by_id.loc[fake.dst_id]
        assert partner["label"] == 0 and fake.dst_id in by_id.index
        assert fake.dst_id == fake.src_id or partner["src_id"] == fake.src_id
    assert sbi["gen_params"].map(lambda p: json.loads(p)["sbi"]["blend_ratio"]).isin([0.25, 0.5, 0.75, 1.0]).all()
    swaps = manifest[manifest["method"] == "inswapper"]
    assert (swaps["src_id"] != swaps["dst_id"]).all() and swaps["generator"].str.startswith("inswapper_128:").all()


@pytest.mark.parametrize("method", ["diffusion", "sbi", SBI_TARGET, "inswapper"])
def test_regenerating_a_row_from_its_provenance_gives_the_same_bytes(made, method):
    out, _ = made
    manifest = read_manifest(out)
    row = manifest[manifest["method"] == method].iloc[-1]
    assert regenerate(out, row["id"], tiny_cfg()) == (out / row["path"]).read_bytes()


def test_a_rerun_skips_everything(made):
    out, _ = made
    before = {p: (out / p).stat().st_mtime_ns for p in files_under(out) if p.startswith("images/")}
    manifest = pd.read_parquet(out / "manifest.parquet")
    summary = run_generate(tiny_cfg(), out, options=JobOptions(cells=CELLS, progress=False))
    assert summary["total"]["made"] == len(manifest)
    assert {p: (out / p).stat().st_mtime_ns for p in before} == before
    pd.testing.assert_frame_equal(pd.read_parquet(out / "manifest.parquet"), manifest)


def test_slurm_array_shards_then_a_merge_run_make_the_same_set(made, tmp_path):
    reference, _ = made
    options = {"cells": CELLS, "progress": False}
    for index in range(2):  # array 1: pristine faces; a fake of shard 1 may need a face of shard 0
        assert (
            run_generate(tiny_cfg(), tmp_path, options=JobOptions(shard=(index, 2), phase="pristine", **options))
            is None
        )
    with pytest.raises(FairforgeError, match="run --phase pristine on every shard"):
        run_generate(tiny_cfg(), tmp_path / "early", options=JobOptions(shard=(1, 2), phase="fakes", **options))
    for index in range(2):  # array 2: fakes
        run_generate(tiny_cfg(), tmp_path, options=JobOptions(shard=(index, 2), phase="fakes", **options))
    assert not (tmp_path / "manifest.parquet").exists() and len(list((tmp_path / "shards").glob("*.parquet"))) >= 2
    summary = run_generate(tiny_cfg(), tmp_path, options=JobOptions(**options))  # the merge run: nothing left to make
    assert summary["total"]["made"] == len(read_manifest(reference))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "manifest.parquet"), pd.read_parquet(reference / "manifest.parquet")
    )
    for path in pd.read_parquet(reference / "manifest.parquet")["path"]:
        assert (tmp_path / path).read_bytes() == (reference / path).read_bytes()


def test_top_up_makes_exactly_the_deficits(made, tmp_path):
    source, _ = made
    out = tmp_path / "set"
    shutil.copytree(source, out)
    old = read_manifest(out)
    deficits = pd.DataFrame(
        {
            "gender": ["male", "female", "female"],
            "race": ["Asian", "Black", "White"],
            "age": ["20-29", "30-39", "20-29"],
            "method": ["diffusion", "sbi", "diffusion"],
            "missing": [2, 1, 1],
        }
    )
    deficits.to_parquet(tmp_path / "deficits.parquet")
    summary = run_generate(tiny_cfg(), out, options=JobOptions(top_up=tmp_path / "deficits.parquet", progress=False))
    manifest = read_manifest(out, check_files=True)
    new = manifest[~manifest["id"].isin(old["id"])]
    partners = int((new["method"] == SBI_TARGET).sum())
    assert summary["total"] == {"made": 4 + partners, "retried": 0, "failed": 0, "pending": 0}
    new = new[new["method"] != SBI_TARGET]
    made_counts = new.groupby(["gender", "race", "age", "method"]).size().to_dict()
    assert made_counts == {
        ("male", "Asian", "20-29", "diffusion"): 2,
        ("female", "Black", "30-39", "sbi"): 1,
        ("female", "White", "20-29", "diffusion"): 1,
    }
    plan = pd.read_parquet(out / "plan.parquet").set_index("id")
    assert sorted(plan.loc[new["id"]].query("gender == 'male'")["k"]) == [3, 4]  # fresh k after 0..2
    assert json.loads((out / "requests.json").read_text())[summary["request"]]["finished"] is True
    # rerunning the finished top-up's command would be a new round; the old rows are untouched
    pd.testing.assert_frame_equal(
        manifest[manifest["id"].isin(old["id"])].reset_index(drop=True), old.reset_index(drop=True), check_dtype=False
    )


class BlackingSafetyChecker:
    """Blanks the images of chosen seeds, as diffusers' safety checker blanks flagged images."""

    def __init__(self, pipe, seeds: set[int]) -> None:
        self.pipe, self.seeds = pipe, seeds

    def __call__(self, **kwargs):
        out = self.pipe(**kwargs)
        for i, generator in enumerate(kwargs["generator"]):
            if generator.initial_seed() in self.seeds:
                out.images[i][:] = 0.0
        return out


def test_a_black_image_is_retried_with_a_new_seed(tiny_cache, tmp_path, monkeypatch):
    import fairforge.generate.diffusion as diffusion

    cfg = tiny_cfg(methods=["diffusion"], diffusion={"max_retries": 2})
    cells = ["male-White-40-49"]
    retried, failing = ("male", "White", "40-49", 0), ("male", "White", "40-49", 1)
    blacked = {derive_seed(0, retried[:3], retried[3], "diffusion", 0)}
    blacked |= {derive_seed(0, failing[:3], failing[3], "diffusion", a) for a in range(3)}
    real_load = diffusion.load_pipeline
    monkeypatch.setattr(diffusion, "load_pipeline", lambda c, d: BlackingSafetyChecker(real_load(c, d), blacked))
    summary = run_generate(cfg, tmp_path, options=JobOptions(cells=cells, count_per_cell=3, progress=False))
    assert summary["total"] == {"made": 2, "retried": 1 + 2, "failed": 1, "pending": 0}
    assert summary["failure_reasons"] == {"black": 1}
    manifest = read_manifest(tmp_path, check_files=True).set_index("id")
    plan = pd.read_parquet(tmp_path / "plan.parquet").set_index("id")
    k0 = plan.index[plan["k"] == 0][0]
    assert manifest.at[k0, "retries"] == 1
    assert manifest.at[k0, "seed"] == derive_seed(0, retried[:3], 0, "diffusion", 1)  # the new seed is recorded
    assert json.loads(manifest.at[k0, "gen_params"])["retry_reasons"] == {"black": 1}
    k1 = plan.index[plan["k"] == 1][0]
    assert k1 not in manifest.index
    assert json.loads((tmp_path / "failed" / f"{k1}.json").read_text())["reason"] == "black"
    # the retried image regenerates exactly from its row (its batch of round 1 is recorded)
    monkeypatch.setattr(diffusion, "load_pipeline", real_load)
    assert regenerate(tmp_path, k0, cfg) == (tmp_path / manifest.at[k0, "path"]).read_bytes()


def test_jpeg_sets_make_fakes_from_lossless_faces(tiny_cache, tmp_path):
    cfg = tiny_cfg(methods=["diffusion", "sbi"], align={"image_format": "jpeg", "jpeg_quality": 90})
    run_generate(cfg, tmp_path, options=JobOptions(cells=["female-Asian-20-29"], count_per_cell=1, progress=False))
    manifest = read_manifest(tmp_path, check_files=True)
    assert manifest["path"].str.endswith(".jpg").all()
    pristine = manifest[manifest["method"] == "diffusion"].iloc[0]
    assert (tmp_path / "lossless" / f"{pristine['id']}.png").is_file()
    sbi = manifest[manifest["method"] == "sbi"].iloc[0]
    assert regenerate(tmp_path, sbi["id"], cfg) == (tmp_path / sbi["path"]).read_bytes()


def test_real_faces_of_an_imported_manifest_are_the_pool(tmp_path):
    import cv2
    from skimage import data

    from fairforge.manifest import write_manifest

    real = tmp_path / "real"
    (real / "img").mkdir(parents=True)
    face = data.astronaut()
    rows = []
    for i, image in enumerate([face, face[:, ::-1], cv2.GaussianBlur(face, (3, 3), 0)]):
        cv2.imwrite(str(real / "img" / f"{i}.png"), np.ascontiguousarray(image[:, :, ::-1]))
        rows.append(
            {
                "id": f"astro{i}",
                "path": f"img/{i}.png",
                "label": 0,
                "method": "real",
                "source": "skimage",
                "gender": "female",
                "race": "White",
                "age": "unknown",
                "identity": f"p{i}",
                "split": "train",  # an official split: swaps pair faces within it
            }
        )
    write_manifest(rows, real)
    cfg = tiny_cfg(
        methods=["sbi", "inswapper"],
        with_age=False,
        detector={"backend": "dlib"},
        pool={"source": "manifest", "manifest": str(real)},
        inswapper={"pairing": {"same_cell": 1}},
    )
    out = tmp_path / "out"
    summary = run_generate(cfg, out, options=JobOptions(cells=["female-White"], count_per_cell=2, progress=False))
    assert summary["total"]["made"] == 4
    manifest = read_manifest(out, check_files=True)
    assert manifest["dst_id"].isin(["astro0", "astro1", "astro2"]).all()
    assert set(manifest["identity"]) <= {"p0", "p1", "p2"}
    assert manifest["prompt"].isna().all()  # real faces have no prompt
    row = manifest[manifest["method"] == "inswapper"].iloc[0]
    assert regenerate(out, row["id"], cfg) == (out / row["path"]).read_bytes()


@pytest.mark.parametrize(
    ("updates", "error", "match"),
    [
        ({"inswapper": {"model": "/nonexistent/inswapper_128.onnx"}}, MissingModelError, r"generate\.inswapper\.model"),
        ({"inswapper": {"sha256": "0" * 64}}, ConfigError, r"generate\.inswapper\.model: sha256"),
        (
            {"inswapper": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}},
            FairforgeError,
            "CUDAExecutionProvider was asked for",
        ),
        (
            {"detector": {"backend": "insightface", "insightface": {"root": "/nonexistent"}}},
            MissingModelError,
            "model pack",
        ),
        ({"pool": {"source": "manifest", "manifest": "/nonexistent"}}, FairforgeError, "manifest not found"),
        ({"diffusion": {"model": "/nonexistent/sdxl"}}, MissingModelError, r"generate\.diffusion\.model: cannot load"),
    ],
)
def test_bad_input_fails_before_any_work(tiny_cache, tmp_path, updates, error, match):
    with pytest.raises(error, match=match):
        run_generate(tiny_cfg(**updates), tmp_path, options=JobOptions(cells=CELLS, progress=False))
    assert not (tmp_path / "plan.parquet").exists() and not (tmp_path / "images").exists()


def test_unknown_cell_fails_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="--cells"):
        run_generate(tiny_cfg(), tmp_path, options=JobOptions(cells=["male-Martian-20-29"], progress=False))
    assert read_rows(tmp_path).empty and not (tmp_path / "plan.parquet").exists()


def test_batched_generation_uses_one_generator_per_image(tiny_cache):
    """Each image's noise comes from its own generator; outputs match batch-of-1 calls up to float noise.

    Bit-exactness across batch sizes does NOT hold on CPU (oneDNN convolutions and small-M GEMMs pick
    batch-dependent kernels, ~1e-6 apart), which is why the plan fixes each image's batch; the same
    batch reproduces bit for bit.
    """
    import torch

    from fairforge.generate.diffusion import generate_batch, load_pipeline, torch_threads

    cfg = tiny_cfg().diffusion
    pipe = load_pipeline(cfg, "cpu")
    prompts, seeds = [f"a portrait photo of person {i}" for i in range(3)], [11, 22, 33]
    with torch_threads(1):
        batched = generate_batch(pipe, cfg, prompts, ["blurry"] * 3, seeds)
        single = np.concatenate([generate_batch(pipe, cfg, [p], ["blurry"], [s]) for p, s in zip(prompts, seeds)])
        again = generate_batch(pipe, cfg, prompts, ["blurry"] * 3, seeds)
    assert np.abs(batched - single).max() < 1e-4
    assert np.abs(batched * 255 - single * 255).max() < 1.0  # at most one uint8 step apart
    assert np.array_equal(again, batched)
    # the latents of image i depend on seed i only
    shape = (1, 4, 8, 8)
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
    from diffusers.utils.torch_utils import randn_tensor

    together = randn_tensor((3, 4, 8, 8), generator=[torch.Generator().manual_seed(s) for s in seeds])
    assert torch.equal(together, torch.cat(noise))
