"""Config loading: presets, overrides, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairforge.config import apply_overrides, deep_merge, load_pipeline_config
from fairforge.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_pipelines_yaml_loads_both_presets():
    tiny = load_pipeline_config(REPO / "pipelines.yaml", preset="tiny")
    full = load_pipeline_config(REPO / "pipelines.yaml", preset="full")
    assert tiny.preset == "tiny" and full.preset == "full"
    assert tiny.taxonomy.build().groups[0] == "male-Asian"


def test_override_sets_a_nested_value():
    cfg = load_pipeline_config(REPO / "pipelines.yaml", preset="tiny", overrides=["seed=7"])
    assert cfg.seed == 7


def test_wrong_type_names_the_key_path(tmp_path):
    (tmp_path / "p.yaml").write_text("seed: 0\n")
    with pytest.raises(ConfigError, match=r"^seed: expected int, got 'abc'"):
        load_pipeline_config(tmp_path / "p.yaml", preset=None, overrides=["seed=abc"])


def test_nested_wrong_type_names_the_full_path(tmp_path):
    (tmp_path / "p.yaml").write_text("evaluate:\n  threshold: high\n")
    with pytest.raises(ConfigError, match=r"evaluate\.threshold: expected float, got 'high'"):
        load_pipeline_config(tmp_path / "p.yaml", preset=None)


def test_unknown_key_is_an_error(tmp_path):
    (tmp_path / "p.yaml").write_text("evaluate:\n  treshold: 0.5\n")
    with pytest.raises(ConfigError, match=r"evaluate\.treshold: unknown key"):
        load_pipeline_config(tmp_path / "p.yaml", preset=None)


def test_unknown_preset_and_bad_yaml(tmp_path):
    (tmp_path / "p.yaml").write_text("presets:\n  tiny: {}\n")
    with pytest.raises(ConfigError, match=r"presets\.huge: unknown preset"):
        load_pipeline_config(tmp_path / "p.yaml", preset="huge")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_pipeline_config(tmp_path / "missing.yaml")


def test_bad_taxonomy_is_an_error(tmp_path):
    (tmp_path / "p.yaml").write_text("taxonomy:\n  races: [A, B]\n")
    with pytest.raises(ConfigError, match=r"taxonomy.race_map\['White'\]"):  # at load time, before any stage
        load_pipeline_config(tmp_path / "p.yaml", preset=None)


def test_merge_and_overrides():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    assert apply_overrides({}, ["x.y=[1, 2]", "z=true"]) == {"x": {"y": [1, 2]}, "z": True}
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["novalue"])
