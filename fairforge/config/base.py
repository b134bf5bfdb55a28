"""YAML configs validated into pydantic models, with errors that name the key path.

Why: a typo in a 200-line YAML should fail at load time with `train.optimizer.rho: expected float,
got 'abc'`, not an hour into a run. Every config model derives from `StrictModel` (unknown keys are
errors); `load_config` does YAML -> preset merge -> `--set` overrides -> validation.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fairforge.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_TYPE_NAMES = {
    "float": "float",
    "int": "int",
    "bool": "bool",
    "string": "str",
    "list": "list",
    "dict": "mapping",
    "model": "mapping",
    "tuple": "list",
    "path": "path",
}


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping top level is a `ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`update` over `base`, recursively for mappings; lists and scalars are replaced whole."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (values parsed as YAML: `2`, `true`, `[a, b]`, `abc`)."""
    out = copy.deepcopy(dict(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[: depth + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def _loc_to_path(loc: tuple[Any, ...], prefix: str) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "<root>"


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: `key.path: expected float, got 'abc'`."""
    lines = []
    for err in exc.errors():
        path = _loc_to_path(
            tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))), prefix
        )
        kind = err["type"]
        got = err.get("input")
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind.endswith(("_parsing", "_type")) and kind.split("_")[0] in _TYPE_NAMES:
            msg = f"expected {_TYPE_NAMES[kind.split('_')[0]]}, got {got!r}"
        else:
            msg = f"{err['msg']}, got {got!r}"
        lines.append(f"{path}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], data: Mapping[str, Any], prefix: str = "") -> M:
    """`model.model_validate(data)` with a `ConfigError` naming each bad key path."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix)) from None


def load_model(
    model: type[M],
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    data: Mapping[str, Any] | None = None,
    prefix: str = "",
) -> M:
    """Load a YAML file (or a mapping) into `model`, applying `--set` overrides first."""
    raw = dict(data) if data is not None else (load_yaml(path) if path is not None else {})
    raw = apply_overrides(raw, overrides)
    return validate(model, raw, prefix)


def dump_yaml(model: BaseModel) -> str:
    """The config as YAML, the form recorded beside every output for provenance."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
