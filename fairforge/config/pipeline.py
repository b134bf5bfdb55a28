"""The whole of pipelines.yaml: shared settings, every stage's section, the presets.

`load_pipeline_config(path, preset, overrides)` merges the file's top level with
`presets.<preset>` and then the `--set` overrides, and validates the result, so `tiny` and `full`
differ only where their preset says.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from fairforge.errors import ConfigError
from fairforge.taxonomy import Taxonomy

from .balance import BalanceConfig, ReleaseConfig
from .base import StrictModel, apply_overrides, deep_merge, load_yaml, validate
from .evaluate import EvaluateConfig
from .generate import GenerateConfig
from .train import TrainConfig


class TaxonomyConfig(StrictModel):
    genders: list[str] = list(Taxonomy().genders)
    races: list[str] = list(Taxonomy().races)
    ages: list[str] = list(Taxonomy().ages)
    race_map: dict[str, str] = dict(Taxonomy().race_map)
    gender_map: dict[str, str] = dict(Taxonomy().gender_map)

    def build(self) -> Taxonomy:
        try:
            return Taxonomy.from_config(self.model_dump())
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


class RealDatasetConfig(StrictModel):
    """A real dataset the user already has, imported into a manifest by `fairforge import`."""

    name: str
    format: Literal["pgfdd", "deepfakebench", "imagefolder"]
    images_root: str
    csv: str | None = None
    json_file: str | None = Field(default=None, alias="json")
    split: Literal["train", "validation", "val", "test"] | None = None
    role: Literal["train", "test", "both"] = "both"
    url: str | None = None


class LaunchConfig(StrictModel):
    """How the pipeline launches training: processes and devices (`accelerate launch` flags)."""

    num_processes: int = Field(1, ge=1, description="processes (GPUs) for training; >1 goes through accelerate launch")
    multi_gpu: bool = Field(True, description="with num_processes > 1 on GPUs: DDP")
    cpu: bool = Field(False, description="CPU-only machine: run num_processes gloo processes (see README)")


class PipelineConfig(StrictModel):
    """Everything one run of the pipeline needs; stages read their own section."""

    version: int = 1
    preset: str = "tiny"
    train_config: str | None = Field(
        None,
        description="a train YAML (path relative to pipelines.yaml, or a shipped name: ddfg, tiny, pg_fdd...) "
        "that the `train:` section is merged over",
    )
    seed: int = 0
    cache_dir: str | None = None
    taxonomy: TaxonomyConfig = TaxonomyConfig()
    datasets: list[RealDatasetConfig] = []
    generate: GenerateConfig = GenerateConfig()
    balance: BalanceConfig = BalanceConfig()
    release: ReleaseConfig = ReleaseConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    launch: LaunchConfig = LaunchConfig()
    stages: list[str] = ["import", "generate", "balance", "release", "train", "predict", "evaluate"]

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: list[str]) -> list[str]:
        known = {"import", "generate", "balance", "release", "train", "predict", "evaluate"}
        unknown = [s for s in value if s not in known]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; expected some of {sorted(known)}")
        return value


def merge_preset(raw: dict[str, Any], preset: str | None, source: str = "pipelines.yaml") -> dict[str, Any]:
    """The file's top level with `presets.<preset>` merged over it."""
    presets = raw.pop("presets", {}) or {}
    if preset is None:
        return raw
    if preset not in presets:
        raise ConfigError(f"{source}: presets.{preset}: unknown preset; expected one of {sorted(presets)}")
    merged = deep_merge(raw, presets[preset] or {})
    merged["preset"] = preset
    return merged


def shipped_train_config(name: str) -> Path:
    """`train/configs/<name>.yaml` of the installed package, found without importing torch."""
    spec = importlib.util.find_spec("fairforge.train")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / "configs" / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"train_config: {name!r} is neither a file nor a shipped train config (train/configs/*.yaml)")


def resolve_train_config(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Merge the `train:` section over the train YAML that `train_config` names (one recipe, one file)."""
    ref = raw.get("train_config")
    if not ref:
        return raw
    path = Path(os.path.expanduser(str(ref)))
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        path = shipped_train_config(str(ref)) if not Path(str(ref)).suffix else path
    if not path.is_file():
        raise ConfigError(f"train_config: {ref!r}: file not found ({path})")
    out = dict(raw)
    out["train"] = deep_merge(load_yaml(path), raw.get("train") or {})
    return out


def load_pipeline_config(
    path: str | os.PathLike[str],
    preset: str | None = "tiny",
    overrides: Iterable[str] = (),
) -> PipelineConfig:
    """pipelines.yaml -> preset -> `--set` overrides -> validated `PipelineConfig`."""
    raw = merge_preset(load_yaml(path), preset, str(path))
    raw = apply_overrides(raw, overrides)
    raw = resolve_train_config(raw, Path(path).resolve().parent)
    return validate(PipelineConfig, raw)


def load_stage_config(
    config: str | os.PathLike[str] | None, preset: str | None, overrides: Iterable[str] = ()
) -> PipelineConfig:
    """What a stage CLI runs on: pipelines.yaml (with an optional preset), or the built-in defaults.

    Every stage command takes `--config/--preset/--set` alike; without `--config` the defaults plus
    `--set` apply, and a `--preset` alone is an error (the presets live in the file).
    """
    if config is not None:
        return load_pipeline_config(config, preset, overrides)
    if preset is not None:
        raise ConfigError("--preset needs --config (the presets live in pipelines.yaml)")
    return validate(PipelineConfig, apply_overrides({}, overrides))
