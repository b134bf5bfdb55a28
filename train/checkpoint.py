"""Checkpoints (resumable training state) and exports (weights a user keeps).

A run folder holds:
- `checkpoints/step_00000040/`: `accelerator.save_state` (model, optimizer, scaler, every
  process's RNG) plus `trainer_state.json` (epoch, batch within the epoch, update count, LR
  schedule, best score). Written under a temporary name and renamed when complete, so `--resume
  latest` never picks a half-written one; the newest `keep_checkpoints` are kept.
- `best/` and `final/`: exports: `model.safetensors` (the bare module's weights), `config.yaml`,
  `data_info.json` (the vocabularies the model was built with) and `metrics.json`. `best/` is
  rewritten whenever validation improves under the `select` rule. These are what
  `fairforge train predict --checkpoint` loads.
- `README.md`: the model card (config, manifests with their SHA-256, metrics).
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from fairforge.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from fairforge.config import dump_yaml, load_model
from fairforge.config.train import TrainConfig
from fairforge.errors import ConfigError, MissingModelError
from fairforge.evaluate.metrics import FAIRNESS_METRICS

from .methods.base import DataInfo

if TYPE_CHECKING:
    from accelerate import Accelerator

STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "model.safetensors"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class TrainState:
    """Where the loop is: enough to continue mid-epoch at the exact batch."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    best_score: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def checkpoints_dir(output_dir: str | os.PathLike[str]) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | os.PathLike[str], state: TrainState, scheduler: Any, keep: int | None
) -> Path:
    """`save_state` into `checkpoints/.tmp-step_N`, then rename (main process) and prune old ones."""
    root = checkpoints_dir(output_dir)
    final = root / f"step_{state.step:08d}"
    tmp = root / f".tmp-{final.name}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    # Every process writes its own RNG state into `tmp`: none may rename it before all are done.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, {"trainer": asdict(state), "scheduler": scheduler.state_dict()})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if keep is not None:
            for old in step_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def step_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete step checkpoints, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str, output_dir: str | os.PathLike[str]) -> Path:
    """`latest` -> the newest complete checkpoint of this run; otherwise a checkpoint folder."""
    if resume == "latest":
        found = step_checkpoints(output_dir)
        if not found:
            raise ConfigError(f"--resume latest: no checkpoint under {checkpoints_dir(output_dir)}")
        return found[-1]
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise ConfigError(f"--resume {resume}: not a checkpoint folder (no {STATE_FILE})")
    return path


def _damaged(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"--resume {path}: damaged checkpoint: {problem}; resume from an earlier one or start afresh")


def _read_state(path: Path) -> tuple[TrainState, dict[str, Any]]:
    file = path / STATE_FILE
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
        state = TrainState(**saved["trainer"])
        scheduler = saved["scheduler"]
        if not isinstance(scheduler, dict):
            raise TypeError("scheduler state is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(path, f"{STATE_FILE} is not a trainer state ({type(exc).__name__}: {exc})") from None
    return state, scheduler


def _check_safetensors(file: Path) -> None:
    """Parse the header; safetensors checks that the tensors it lists cover the file exactly."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        handle.keys()


def _check_torch_file(file: Path) -> None:
    """A `torch.save` file is whole: a zip archive whose members pass their CRC, or (the legacy
    format) a pickle whose opcodes run through to STOP. Nothing is unpickled or executed."""
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC")
        return
    with open(file, "rb") as handle:
        for _ in pickletools.genops(handle):
            pass


def check_checkpoint(accelerator: Accelerator, path: Path) -> tuple[TrainState, dict[str, Any]]:
    """Every file `load_state` will read is there and whole, or a `ConfigError` naming the file.

    Why before loading: accelerate raises a bare traceback on a truncated weights file, and only
    logs a missing RNG state and trains on with the fresh one (the resumed run would silently
    differ from the uninterrupted one).
    """
    state, scheduler = _read_state(path)
    from accelerate.utils import OPTIMIZER_NAME, RNG_STATE_NAME, SAFE_MODEL_NAME

    expected: list[tuple[Path, Callable[[Path], None]]] = []
    for i in range(len(accelerator._models)):
        expected.append(
            (
                path / (f"{SAFE_MODEL_NAME}.safetensors" if i == 0 else f"{SAFE_MODEL_NAME}_{i}.safetensors"),
                _check_safetensors,
            )
        )
    for i in range(len(accelerator._optimizers)):
        expected.append(
            (path / (f"{OPTIMIZER_NAME}.bin" if i == 0 else f"{OPTIMIZER_NAME}_{i}.bin"), _check_torch_file)
        )
    expected.append((path / f"{RNG_STATE_NAME}_{accelerator.process_index}.pkl", _check_torch_file))
    for file, check in expected:
        if not file.is_file():
            raise _damaged(path, f"{file.name} is missing")
        try:
            check(file)
        except Exception as exc:  # noqa: BLE001 - any failure to parse means the file is damaged
            raise _damaged(path, f"{file.name} is unreadable ({type(exc).__name__}: {exc})") from None
    return state, scheduler


def load_checkpoint(accelerator: Accelerator, path: Path, scheduler: Any) -> TrainState:
    """Restore a checkpoint after checking it whole; a damaged one is refused by name."""
    state, saved_scheduler = check_checkpoint(accelerator, path)
    try:
        accelerator.load_state(str(path))
        scheduler.load_state_dict(saved_scheduler)
    except (RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise _damaged(path, f"it does not fit this run's model or optimizer ({type(exc).__name__}: {first})") from None
    return state


def export(folder: Path, model: nn.Module, cfg: TrainConfig, info: DataInfo, metrics: dict[str, Any]) -> None:
    """Weights (safetensors) + config + vocabularies + metrics: a folder `predict` can load alone."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(state))
    atomic_write_text(folder / "config.yaml", dump_yaml(cfg))
    atomic_write_json(folder / "data_info.json", info.to_dict())
    atomic_write_json(folder / "metrics.json", metrics)


def resolve_export(checkpoint: str | os.PathLike[str]) -> Path:
    """An export folder, or a run folder (its `best/`, else its `final/`)."""
    path = Path(checkpoint)
    for candidate in (path, path / "best", path / "final"):
        if (candidate / WEIGHTS_FILE).is_file() and (candidate / "config.yaml").is_file():
            return candidate
    raise MissingModelError(
        f"--checkpoint {checkpoint}: no {WEIGHTS_FILE} + config.yaml there nor in its best/ or final/"
    )


def load_export(folder: Path) -> tuple[TrainConfig, DataInfo, dict[str, torch.Tensor]]:
    cfg = load_model(TrainConfig, folder / "config.yaml")
    info = DataInfo.from_dict(json.loads((folder / "data_info.json").read_text(encoding="utf-8")))
    return cfg, info, load_file(str(folder / WEIGHTS_FILE))


def write_model_card(
    output_dir: Path, cfg: TrainConfig, manifests: dict[str, str], state: TrainState, final_metrics: dict[str, Any]
) -> None:
    """README.md in the run folder: what was trained on what, and how it scored."""
    lines = [
        f"# {cfg.method} detector ({cfg.model.backbone})",
        "",
        f"Trained by `fairforge train` for {state.step} updates ({state.epoch} epochs), seed {cfg.seed}.",
        "",
        "## Data",
        "",
        "| manifest | sha256 |",
        "|---|---|",
        *[f"| `{path}` | `{digest}` |" for path, digest in manifests.items()],
        "",
        "## Validation",
        "",
        f"Selection rule: `{cfg.select.rule}`"
        + (f" with {cfg.select.metric} <= {cfg.select.bound}" if cfg.select.rule == "auc_under_fairness" else "")
        + (f"; best epoch {state.best_epoch} (score {state.best_score:.4f})." if state.best_epoch is not None else "."),
        "",
        "| epoch | " + " | ".join(_CARD_METRICS) + " |",
        "|---|" + "---|" * len(_CARD_METRICS),
        *[f"| {row['epoch']} | " + " | ".join(_fmt(row.get(k)) for k in _CARD_METRICS) + " |" for row in state.history],
        "",
        "Files: `best/` and `final/` hold `model.safetensors`, `config.yaml`, `data_info.json`, `metrics.json`.",
        "",
        "## Config",
        "",
        "```yaml",
        dump_yaml(cfg).rstrip(),
        "```",
        "",
        "## Final metrics",
        "",
        "```json",
        json.dumps(final_metrics, indent=2, default=str),
        "```",
        "",
    ]
    atomic_write_text(output_dir / "README.md", "\n".join(lines))


_CARD_METRICS = ("val/auc", "val/acc", *(f"val/{name}" for name in FAIRNESS_METRICS))


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


__all__ = [
    "TrainState",
    "check_checkpoint",
    "export",
    "load_checkpoint",
    "load_export",
    "resolve_export",
    "resolve_resume",
    "save_checkpoint",
    "step_checkpoints",
    "write_model_card",
]
