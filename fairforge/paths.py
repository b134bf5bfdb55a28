"""The path policy every reader and writer follows.

Why one module: a check on the path string alone (`..`, absolute paths) is defeated by a symlink,
and a stage that writes into a folder it does not own can destroy a user's files. So:

- a path read from a manifest or a table is resolved (symlinks included) and must land inside its
  root, or inside a folder the root's owner marker says fairforge linked to on purpose (`--link`
  imports, symlinked balance outputs); `FAIRFORGE_FOLLOW_LINKS=1` is the explicit flag that lets a
  user follow links anywhere;
- a value that becomes one path component (a `source`, a split, a stage name) is one safe component;
- an output folder is claimed before anything is written: it must be new, empty, or carry the owner
  marker fairforge writes into every folder it creates; it may not be (or lie inside) an input;
  only then may a stage replace or delete files in it, and only files it wrote itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import FairforgeError

#: Written into every output folder fairforge creates; its JSON says which command made it.
OWNER_MARKER = ".fairforge-owner.json"
#: Set to 1 to follow symlinks that leave their root (a user's explicit choice).
FOLLOW_LINKS_ENV = "FAIRFORGE_FOLLOW_LINKS"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathError(FairforgeError, ValueError):
    """A path leaves its root, a name is not one safe component, or an output folder is not ours."""


# ------------------------------------------------------------------------------------------------
# names and paths read from data
# ------------------------------------------------------------------------------------------------
def safe_component(value: object, what: str) -> str:
    """`value` as one path component, or a `PathError` naming `what` (e.g. `row 3 column 'source'`)."""
    text = value if isinstance(value, str) else None
    if not text:
        raise PathError(f"{what}: expected a non-empty name, got {value!r}")
    if text in (".", "..") or "/" in text or "\\" in text or _CONTROL.search(text) or ":" in text:
        raise PathError(f"{what}: {value!r} is not a plain name (no '/', '\\\\', ':', '..' or control characters)")
    return text


def component_problem(value: object) -> str | None:
    """Why `value` is not one safe path component, or None."""
    try:
        safe_component(value, "name")
    except PathError as exc:
        return str(exc).split(": ", 1)[1]
    return None


def follow_links_flag() -> bool:
    return os.environ.get(FOLLOW_LINKS_ENV, "").strip().lower() in ("1", "true", "yes")


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether the real `path` is `root` or below it (both resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def allowed_roots(root: str | os.PathLike[str]) -> list[str]:
    """`root` itself and the folders its owner marker lists as deliberate link targets, resolved."""
    roots = [os.path.realpath(root)]
    marker = read_marker(root)
    if marker:
        roots += [os.path.realpath(p) for p in marker.get("links_to", []) if isinstance(p, str)]
    return roots


def within_roots(path: str | os.PathLike[str], roots: Sequence[str], follow_links: bool | None = None) -> bool:
    """Whether the real `path` lies in one of `roots` (already resolved; see `allowed_roots`)."""
    if follow_links if follow_links is not None else follow_links_flag():
        return True
    real = os.path.realpath(path)
    return any(real == base or real.startswith(base.rstrip(os.sep) + os.sep) for base in roots)


def resolve_inside(
    root: str | os.PathLike[str],
    rel: str,
    what: str,
    follow_links: bool | None = None,
    roots: Sequence[str] | None = None,
) -> Path:
    """`root/rel` resolved; a `PathError` naming `what` when it lands outside every allowed root."""
    path = os.path.join(os.fspath(root), rel)
    if within_roots(path, roots if roots is not None else allowed_roots(root), follow_links):
        return Path(path)
    real = os.path.realpath(path)
    raise PathError(
        f"{what}: {rel!r} resolves to {real}, outside {os.path.realpath(root)} (a symlink leaves the folder; "
        f"set {FOLLOW_LINKS_ENV}=1 to follow links anywhere)"
    )


# ------------------------------------------------------------------------------------------------
# output folders fairforge owns
# ------------------------------------------------------------------------------------------------
def read_marker(folder: str | os.PathLike[str]) -> dict | None:
    """The owner marker of `folder`, or None when it has none (or an unreadable one)."""
    file = Path(folder) / OWNER_MARKER
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_owned(folder: str | os.PathLike[str]) -> bool:
    return read_marker(folder) is not None


def _write_marker(folder: Path, data: dict) -> None:
    from .atomic import atomic_write_json

    atomic_write_json(folder / OWNER_MARKER, data)


def claim_output(
    out: str | os.PathLike[str],
    command: str,
    inputs: Iterable[str | os.PathLike[str]] = (),
    flag: str = "--out",
    foreign_ok: bool = False,
) -> Path:
    """Make `out` a folder this command may write into, or raise a one-line `PathError`.

    Refused: a file; a folder equal to or inside one of `inputs`; a non-empty folder without the
    owner marker (unless `foreign_ok`: an import may write its manifest beside images the user
    keeps there; it still deletes nothing of theirs). Accepted folders get the marker first.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PathError(f"{flag} {out}: exists and is not a folder")
    for given in inputs:
        source = Path(given)
        if source.is_file():
            source = source.parent
        if source.exists() and is_inside(out, source):
            where = "is" if os.path.realpath(out) == os.path.realpath(source) else "is inside"
            raise PathError(f"{flag} {out}: {where} the input folder {source}; choose a folder of its own")
    marker = read_marker(out) if out.is_dir() else None
    if marker is None:
        # the marker and its temporary file (another rank of this command writing it) are not foreign
        ours = (OWNER_MARKER, f".{OWNER_MARKER}.")
        if out.is_dir() and any(not p.name.startswith(ours) for p in out.iterdir()) and not foreign_ok:
            raise PathError(
                f"{flag} {out}: holds files fairforge did not write (no {OWNER_MARKER}); choose a new or empty folder"
            )
        out.mkdir(parents=True, exist_ok=True)
        _write_marker(out, {"made_by": f"fairforge {command}", "links_to": []})
    return out


def record_link_targets(out: str | os.PathLike[str], targets: Iterable[str | os.PathLike[str]]) -> None:
    """Note in `out`'s marker that its symlinks may point into `targets` (and what those allow)."""
    marker = read_marker(out) or {"made_by": "fairforge", "links_to": []}
    known = list(marker.get("links_to", []))
    for target in targets:
        for root in allowed_roots(target):
            if root not in known and not is_inside(root, out):
                known.append(root)
    marker["links_to"] = known
    _write_marker(Path(out), marker)


__all__ = [
    "FOLLOW_LINKS_ENV",
    "OWNER_MARKER",
    "PathError",
    "allowed_roots",
    "claim_output",
    "component_problem",
    "follow_links_flag",
    "is_inside",
    "is_owned",
    "read_marker",
    "record_link_targets",
    "resolve_inside",
    "safe_component",
    "within_roots",
]
