"""Stage fingerprints: rerun a stage only when its config or its inputs changed (like a build system).

A stage that finishes writes `RUN_DIR/<stage>/.stage.json` with the hash of its config section and
of every input file it read. On the next run the runner recomputes that fingerprint; when it matches
and the stage's outputs are still there, the stage is skipped. The record is written last and
atomically, so a stage killed midway is never taken as done.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fairforge.atomic import atomic_write_json

STATE_NAME = ".stage.json"


def hash_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """sha256 of each file (folders: of every manifest/parquet/json/yaml file below them, sorted)."""
    out: dict[str, str] = {}
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix in {".parquet", ".json", ".yaml", ".csv", ".jsonl"}
                and not f.name.startswith(".")
            )
        elif p.is_file():
            files = [p]
        else:
            out[str(p)] = "missing"
            continue
        digest = hashlib.sha256()
        for f in files:
            digest.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            with open(f, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
        out[str(p)] = digest.hexdigest()
    return out


def fingerprint(config: Mapping[str, Any], inputs: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """What a stage's result depends on: its config (canonical JSON) and its input files."""
    from fairforge import __version__

    config_json = json.dumps(config, sort_keys=True, default=str)
    return {
        "fairforge": __version__,
        "config_sha256": hashlib.sha256(config_json.encode()).hexdigest(),
        "inputs": hash_files(inputs),
    }


def is_current(stage_dir: Path, expected: Mapping[str, Any]) -> bool:
    state = stage_dir / STATE_NAME
    if not state.is_file():
        return False
    try:
        recorded = json.loads(state.read_text())
    except json.JSONDecodeError:
        return False
    return {k: recorded.get(k) for k in expected} == dict(expected)


def record(stage_dir: Path, fp: Mapping[str, Any], seconds: float, outputs: Iterable[str]) -> None:
    atomic_write_json(stage_dir / STATE_NAME, {**fp, "seconds": round(seconds, 2), "outputs": sorted(outputs)})


def read_record(stage_dir: Path) -> dict[str, Any] | None:
    state = stage_dir / STATE_NAME
    if not state.is_file():
        return None
    try:
        return json.loads(state.read_text())
    except json.JSONDecodeError:
        return None
