"""Config models and loading. `load_pipeline_config` for pipelines.yaml, `load_model` for one section."""

from .base import ConfigError, StrictModel, apply_overrides, deep_merge, dump_yaml, load_model, load_yaml, validate
from .pipeline import PipelineConfig, load_pipeline_config, load_stage_config, merge_preset

__all__ = [
    "ConfigError",
    "PipelineConfig",
    "StrictModel",
    "apply_overrides",
    "deep_merge",
    "dump_yaml",
    "load_model",
    "load_pipeline_config",
    "load_stage_config",
    "load_yaml",
    "merge_preset",
    "validate",
]
