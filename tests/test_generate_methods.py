"""Generators are a registry: one defined here, in a test module, runs through plan, job and regenerate."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
from pydantic import BaseModel

from fairforge.config import deep_merge, validate
from fairforge.config.generate import GenerateConfig
from fairforge.errors import ConfigError
from fairforge.generate import JobOptions, regenerate, run_generate
from fairforge.generate.methods import GENERATORS, Generator, get, register
from fairforge.generate.output import decode
from fairforge.manifest import read_manifest


class MirrorOptions(BaseModel):
    axis: Literal["horizontal", "vertical"] = "horizontal"


@register
class Mirror(Generator):
    """A fake that is its pristine face mirrored: the smallest generator there is."""

    name = "test_mirror"
    order = 30
    Config = MirrorOptions

    def make(self, cfg, row, faces):
        face = faces.get(row["src_id"])
        axis = 1 if self.options(cfg).axis == "horizontal" else 0
        return np.ascontiguousarray(np.flip(face.crop, axis=axis)), face, {"mirror": self.options(cfg).axis}


def cfg_with(**updates) -> GenerateConfig:
    base = {"align": {"crop_size": 64}, "diffusion": {"batch_size": 2}, "num_threads": 1, "count_per_cell": 2}
    return validate(GenerateConfig, deep_merge(base, updates))


def test_the_built_in_generators_are_registered():
    assert {"diffusion", "sbi", "sbi_target", "inswapper", "test_mirror"} <= set(GENERATORS.names())
    assert get("sbi_target").kind == "partner" and get("diffusion").kind == "pristine"


def test_a_generator_from_a_test_module_runs_through_plan_job_and_regenerate(tiny_cache, tmp_path):
    cfg = cfg_with(methods=["diffusion", "test_mirror"], options={"test_mirror": {"axis": "vertical"}})
    run_generate(cfg, tmp_path, options=JobOptions(cells=["female-Black-30-39"], progress=False))
    manifest = read_manifest(tmp_path, check_files=True)
    fakes = manifest[manifest["method"] == "test_mirror"]
    assert len(fakes) == 2 and (fakes["label"] == 1).all() and (fakes["generator"] == "test_mirror").all()
    for fake in fakes.itertuples():
        pristine = decode(tmp_path / manifest.set_index("id").loc[fake.src_id, "path"])  # PNG: lossless
        assert np.array_equal(decode(tmp_path / fake.path), pristine[::-1])
        assert regenerate(tmp_path, fake.id, cfg) == (tmp_path / fake.path).read_bytes()
    # its options shape the ids like any method's section: another axis is another image
    other = cfg_with(methods=["diffusion", "test_mirror"], options={"test_mirror": {"axis": "horizontal"}})
    run_generate(other, tmp_path / "h", options=JobOptions(cells=["female-Black-30-39"], progress=False))
    assert not set(read_manifest(tmp_path / "h")["id"]) & set(fakes["id"])


def test_an_unknown_method_is_an_error_naming_the_generators():
    with pytest.raises(ConfigError, match=r"unknown method\(s\) \['deepfacelab'\].*'inswapper'.*'sbi'"):
        cfg_with(methods=["diffusion", "deepfacelab"])
    with pytest.raises(ConfigError, match=r"plan.method: unknown generator 'faceshifter'; expected one of"):
        get("faceshifter", key="plan.method")
    with pytest.raises(ConfigError, match=r"options.*'sbi'.*takes no options"):
        cfg_with(options={"sbi": {"x": 1}})
    with pytest.raises(ConfigError, match=r"options.*test_mirror"):
        cfg_with(options={"test_mirror": {"axis": "diagonal"}})


def test_a_duplicate_generator_name_is_refused():
    class Again(Generator):
        name = "sbi"

    with pytest.raises(ValueError, match="generator 'sbi' is registered twice"):
        register(Again)
