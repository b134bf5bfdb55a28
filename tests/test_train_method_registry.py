"""The method registry: a method added from this test module, without touching any other file, is
validated by the config schema, built and trained by `train/run.py`; config validation imports no torch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pydantic import Field
from test_train_data import make_toy_manifest

from fairforge.config.base import StrictModel
from fairforge.errors import ConfigError
from fairforge.train.methods import METHOD_CONFIGS, METHODS, register_config, register_method
from fairforge.train.methods.base import Batch, StepContext, StepLogs
from fairforge.train.methods.erm import ERM


class ToyScaledConfig(StrictModel):
    scale: float = Field(1.0, gt=0.0, description="factor on ERM's loss")


class ToyScaledERM(ERM):
    """ERM with its loss multiplied by `toy_scaled_erm.scale`; counts its steps."""

    steps = 0

    def training_step(self, ctx: StepContext, batch: Batch) -> StepLogs:
        detector = ctx.unwrapped
        type(self).steps += 1

        def loss_fn() -> dict[str, torch.Tensor]:
            losses = detector.losses(batch, ctx.model(batch))
            return {**losses, "overall": ctx.config.toy_scaled_erm.scale * losses["overall"]}

        return ctx.update(loss_fn)


@pytest.fixture(autouse=True, scope="module")
def _toy_method_registered() -> Iterator[None]:
    """Registered for this module's tests only: a section left in the registry would appear in every
    later config dump of the same process (TrainConfig carries one section per registered method)."""
    register_config("toy_scaled_erm")(ToyScaledConfig)
    register_method("toy_scaled_erm")(ToyScaledERM)
    yield
    METHODS.unregister("toy_scaled_erm")
    METHOD_CONFIGS.unregister("toy_scaled_erm")


def test_a_method_from_a_test_module_is_configured_and_trained(tmp_path: Path, tiny_cache) -> None:  # noqa: ANN001
    from fairforge.train.run import load_config, train

    assert "toy_scaled_erm" in METHODS.names() and "toy_scaled_erm" in METHOD_CONFIGS.names()
    toy = make_toy_manifest(tmp_path / "data", n=16, size=32)
    overrides = [f"data.train=[{toy}]", f"output_dir={tmp_path / 'run'}", "max_steps=2", "data.batch_size=4"]
    cfg = load_config("tiny", [*overrides, "method=toy_scaled_erm", "toy_scaled_erm.scale=0.5"])
    assert cfg.toy_scaled_erm.scale == 0.5 and "toy_scaled_erm:\n  scale: 0.5" in _dump(cfg)
    with pytest.raises(ConfigError, match=r"toy_scaled_erm\.scale: Input should be greater than 0"):
        load_config("tiny", [*overrides, "method=toy_scaled_erm", "toy_scaled_erm.scale=-1"])
    train(cfg)
    assert ToyScaledERM.steps == 2
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def _dump(cfg: object) -> str:
    from fairforge.config import dump_yaml

    return dump_yaml(cfg)  # type: ignore[arg-type]


def test_unknown_methods_sections_and_duplicates_are_refused() -> None:
    from fairforge.config.base import validate
    from fairforge.config.train import TrainConfig

    with pytest.raises(ConfigError, match=r"method: unknown method 'pg_fdx'; expected one of \[.*'pg_fdd'"):
        validate(TrainConfig, {"method": "pg_fdx"})
    with pytest.raises(ConfigError, match=r"pg_fdx: unknown key"):
        validate(TrainConfig, {"pg_fdx": {"tau1": 1.0}})
    with pytest.raises(ConfigError, match=r"pg_fdd\.tau9: unknown key"):
        validate(TrainConfig, {"pg_fdd": {"tau9": 1.0}})
    with pytest.raises(ValueError, match="registered twice"):
        register_method("erm")(type("OtherERM", (ERM,), {}))
    with pytest.raises(ValueError, match="registered twice"):
        register_config("pg_fdd")(type("OtherSettings", (StrictModel,), {}))


def test_config_validation_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from fairforge.config.base import validate\n"
        "from fairforge.config.train import TrainConfig\n"
        "cfg = validate(TrainConfig, {'method': 'pg_fdd', 'pg_fdd': {'fair_loss': 'reference'}})\n"
        "assert cfg.pg_fdd.fair_loss == 'reference' and cfg.roga.reals == 'shared'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
