"""Model files named in the config: `tiny:NAME`, a local path, sha256 pins.

Why here: every weight the stage touches (the diffusion pipeline, the swapper, the recognition
model, the insightface pack, the dlib predictor) is resolved and checked before the first image,
so a missing file or a wrong checksum fails in the first second with the key path that names it,
not an hour into a run.
"""

from __future__ import annotations

import os
from pathlib import Path

from fairforge.errors import ConfigError, MissingModelError
from fairforge.manifest import file_sha256

TINY_PREFIX = "tiny:"


def is_tiny(spec: str) -> bool:
    return spec.startswith(TINY_PREFIX)


def resolve_file(spec: str, key: str, sha256: str | None = None, hint: str = "") -> Path:
    """The local file a config value names (`tiny:NAME` builds the tiny model), sha256-checked when pinned."""
    if is_tiny(spec):
        from fairforge import tiny

        path = tiny.ensure(spec[len(TINY_PREFIX) :])
    else:
        path = Path(os.path.expanduser(spec))
        if not path.is_file():
            raise MissingModelError(f"{key}: model file {str(path)!r} not found{'; ' + hint if hint else ''}")
    if sha256:
        check_sha256(path, sha256, key)
    return path


def check_sha256(path: Path, expected: str, key: str) -> None:
    actual = file_sha256(path)
    if actual.lower() != expected.lower():
        raise ConfigError(f"{key}: sha256 of {str(path)!r} is {actual}, the config pins {expected}")


def resolve_pretrained(spec: str) -> str:
    """What `from_pretrained` gets: the tiny folder, a local folder, or the hub id unchanged."""
    if is_tiny(spec):
        from fairforge import tiny

        return str(tiny.ensure(spec[len(TINY_PREFIX) :]))
    expanded = os.path.expanduser(spec)
    return expanded if os.path.isdir(expanded) else spec
