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

from pydantic import Field, field_validator, model_validator

from fairforge.errors import ConfigError

from .balance import BalanceConfig, ReleaseConfig
from .base import StrictModel, apply_overrides, deep_merge, load_yaml, validate
from .evaluate import EvaluateConfig
from .generate import GenerateConfig
from .taxonomy import TaxonomyConfig
from .train import TrainConfig


class RealDatasetConfig(StrictModel):
    """A real dataset the user already has, imported into a manifest by `fairforge import`."""

    name: str
    format: str = Field(description="an import format: pgfdd, deepfakebench, imagefolder (`fairforge import --help`)")
    images_root: str
    csv: str | None = None
    json_file: str | None = Field(default=None, alias="json")
    split: Literal["train", "validation", "val", "test"] | None = None
    role: Literal["train", "test", "both"] = "both"
    url: str | None = None

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        """The choices are the importers' registry (fairforge/importers/cli.py)."""
        from fairforge.importers.cli import FORMATS

        if value not in FORMATS:
            raise ValueError(f"unknown import format {value!r}; expected one of {FORMATS.names()}")
        return value


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
        """The choices are the stage registry's (fairforge/pipeline/stages.py), imported only here."""
        from fairforge.pipeline.stage import STAGES

        unknown = [s for s in value if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; expected some of {STAGES.names()}")
        return value

    @model_validator(mode="after")
    def _one_taxonomy(self) -> PipelineConfig:
        """The top-level `taxonomy:` is every stage's: train and evaluate take it unless they state the same one."""
        for name in TAXONOMY_SECTIONS:
            section = getattr(self, name)
            if "taxonomy" in section.model_fields_set and section.taxonomy != self.taxonomy:
                raise ValueError(
                    f"{name}.taxonomy differs from the top-level taxonomy; state the taxonomy once, at the top level"
                )
            section.taxonomy = self.taxonomy
        return self


#: Sections that carry their own copy of the top-level taxonomy (their stages run from that section alone).
TAXONOMY_SECTIONS = ("train", "evaluate")


def _preset_chain(presets: dict[str, Any], preset: str, source: str) -> list[dict[str, Any]]:
    """`preset` and the presets it `extends`, most basic first (a cycle is an error)."""
    chain: list[dict[str, Any]] = []
    seen: list[str] = []
    name: str | None = preset
    while name is not None:
        if name not in presets:
            where = f"presets.{seen[-1]}.extends" if seen else f"presets.{name}"
            raise ConfigError(f"{source}: {where}: unknown preset {name!r}; expected one of {sorted(presets)}")
        if name in seen:
            raise ConfigError(f"{source}: presets.{preset}.extends: a cycle ({' -> '.join([*seen, name])})")
        seen.append(name)
        body = dict(presets[name] or {})
        name = body.pop("extends", None)
        chain.insert(0, body)
    return chain


def merge_preset(raw: dict[str, Any], preset: str | None, source: str = "pipelines.yaml") -> dict[str, Any]:
    """The file's top level with `presets.<preset>` merged over it.

    A preset may name another in `extends:`; the other's values come first, so a variant of a
    preset states only what it changes.
    """
    presets = raw.pop("presets", {}) or {}
    if preset is None:
        return raw
    if preset not in presets:
        raise ConfigError(f"{source}: presets.{preset}: unknown preset; expected one of {sorted(presets)}")
    merged = raw
    for body in _preset_chain(presets, preset, source):
        merged = deep_merge(merged, body)
    merged["preset"] = preset
    return merged


def shipped_train_config(name: str, key: str = "train_config") -> Path:
    """`train/configs/<name>.yaml` of the installed package, found without importing torch."""
    spec = importlib.util.find_spec("fairforge.train")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / "configs" / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{key}: {name!r} is neither a file nor a shipped train config (train/configs/*.yaml)")


def find_train_config(ref: str | os.PathLike[str], base_dir: Path | None = None, key: str = "train_config") -> Path:
    """A train YAML: a path (relative to `base_dir`, default the working folder), or a shipped name (`ddfg`).

    `key` names where the reference came from in the error (`train_config`, `--config`).
    """
    path = Path(os.path.expanduser(str(ref)))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file() and not Path(str(ref)).suffix:
        path = shipped_train_config(str(ref), key)
    if not path.is_file():
        raise ConfigError(f"{key}: {str(ref)!r}: config file not found ({path})")
    return path


def resolve_train_config(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Merge the `train:` section over the train YAML that `train_config` names (one recipe, one file)."""
    ref = raw.get("train_config")
    if not ref:
        return raw
    out = dict(raw)
    out["train"] = deep_merge(load_yaml(find_train_config(ref, base_dir)), raw.get("train") or {})
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
