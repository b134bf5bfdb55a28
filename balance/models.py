"""Where a configured model lives: a path, a hub id, or `tiny:NAME` (built by `fairforge.tiny`)."""

from __future__ import annotations

from pathlib import Path

from fairforge.errors import MissingModelError

TINY_PREFIX = "tiny:"


def resolve_model(value: str | None, key: str, must_exist: bool = True, hint: str = "") -> str:
    """The local path (or hub id when `must_exist` is off) a config value names.

    `key` is the config key path, so a missing model is reported where the user set it.
    """
    if not value:
        raise MissingModelError(f"{key}: no model configured{'; ' + hint if hint else ''}")
    if value.startswith(TINY_PREFIX):
        from fairforge import tiny

        return str(tiny.ensure(value[len(TINY_PREFIX) :]))
    path = Path(value).expanduser()
    if path.exists():
        return str(path)
    if must_exist:
        raise MissingModelError(f"{key}: {value} does not exist{'; ' + hint if hint else ''}")
    return value
