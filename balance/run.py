"""`fairforge balance`: verify and filter the generated set, balance it, mix in real data, split.

Order of work (each step's output is a file in DIR, written atomically):
1. load the classifiers / detector / embedder once; measurements are cached per image;
2. the closed loop (`loop.py`): verify -> deficits -> top up -> verify, every round kept;
3. mix the kept synthetic rows with real rows at `mix.real_ratio`, place the images under DIR;
4. the splits: synthetic rows keep the plan's, real rows their official ones (or by person), the
   rest split by person; the independent leak check refuses a set where a person spans splits;
5. DIR/manifest.parquet, rejected.parquet, deficits.parquet, acceptance.parquet, provenance.json,
   config.yaml and the report.
A kill at any point leaves only complete files; a rerun reuses the cached measurements and
writes the same outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fairforge.atomic import atomic_write_json, atomic_write_text
from fairforge.config import PipelineConfig
from fairforge.config.balance import BalanceConfig
from fairforge.errors import ManifestError
from fairforge.manifest import MANIFEST_NAME, read_manifest, to_frame, write_manifest
from fairforge.paths import claim_output, component_problem, record_link_targets

from .audit import audit_balanced
from .cap import cell_keys
from .leaks import check_no_leaks
from .loop import TopUp, run_loop, write_table
from .measure import MeasureCache, Measurers
from .mix import materialize, sample_real
from .report import write_report
from .split import assign_splits
from .verify import RoundResult, verify_round, with_partners

log = logging.getLogger(__name__)

#: Columns of rejected.parquet besides the reason (enough to audit a verdict without the images).
REJECT_COLUMNS = (
    "id",
    "path",
    "label",
    "method",
    "gender",
    "race",
    "age",
    "pred_gender",
    "pred_race",
    "pred_age",
    "pred_gender_conf",
    "pred_race_conf",
    "pred_age_conf",
    "face_score",
    "sharpness",
    "phash",
    "width",
    "height",
    "sha256",
)


@dataclass
class BalanceResult:
    out_dir: Path
    manifest: pd.DataFrame
    acceptance: pd.DataFrame
    deficits: pd.DataFrame
    rounds: pd.DataFrame
    rejected: pd.DataFrame


def strata(frame: pd.DataFrame, with_age: bool) -> pd.Series:
    """The stratum of a row: its cell and its label."""
    keys = cell_keys(frame, with_age)
    return keys["gender"] + "|" + keys["race"] + "|" + keys["age"] + "|" + frame["label"].astype(str)


def inherit_cells(config: PipelineConfig) -> BalanceConfig:
    """The balance section, targeting the cells (and ages, and whether cells have an age) generate
    makes unless it sets its own: otherwise the closed loop would ask for cells never planned."""
    cfg = config.balance
    generate = config.generate
    update = {}
    if cfg.cells is None and getattr(generate, "cells", None) is not None:
        update["cells"] = list(generate.cells)
    if cfg.ages is None and getattr(generate, "ages", None) is not None:
        update["ages"] = list(generate.ages)
    if "with_age" not in cfg.model_fields_set and hasattr(generate, "with_age"):
        update["with_age"] = bool(generate.with_age)
    return cfg.model_copy(update=update) if update else cfg


def run_balance(
    config: PipelineConfig,
    gen_dir: str | Path,
    out_dir: str | Path,
    real: Sequence[str | Path] = (),
    topup: TopUp | None = None,
    progress: bool = True,
) -> BalanceResult:
    """Run the balance stage; `topup` (with `balance.loop.until_full`) closes the loop."""
    cfg = inherit_cells(config)
    taxonomy = config.taxonomy.build()
    gen_dir, out_dir = Path(gen_dir), Path(out_dir)
    claim_output(out_dir, "balance", inputs=[gen_dir, *real])
    real_frames = [read_manifest(p, taxonomy, check_files=True) for p in real]
    for frame in [read_manifest(gen_dir, taxonomy, validate=False), *real_frames]:
        _check_sources(frame)  # before hours of measuring: each names a folder under DIR/images/
    previous = _placed_before(out_dir)

    measurers = Measurers.load(cfg, taxonomy)
    cache = MeasureCache(out_dir / "cache" / f"measure-{measurers.signature()}")

    def verify(frame: pd.DataFrame, root: Path) -> RoundResult:
        return verify_round(frame, root, measurers, cache, cfg, taxonomy, progress=progress)

    signature = hashlib.sha256(
        json.dumps(
            [cfg.model_dump(mode="json"), str(gen_dir.resolve()), config.taxonomy.model_dump()], sort_keys=True
        ).encode()
    ).hexdigest()[:16]
    result, rounds = run_loop(
        gen_dir,
        out_dir,
        verify,
        taxonomy,
        topup if cfg.loop.until_full else None,
        cfg.loop.max_rounds,
        signature,
    )
    gen_root = Path(read_manifest(gen_dir, taxonomy, validate=False).attrs["root"])
    synthetic = to_frame(
        result.rows.loc[with_partners(result.rows, result.kept)].drop(columns=["readable", "embedding"])
    )

    # mix: real rows, sampled per (cell, label) stratum
    gen_file = str(Path(gen_root) / MANIFEST_NAME)
    parts, roots = [synthetic], [pd.Series(str(gen_root), index=synthetic.index)]
    files = [pd.Series(gen_file, index=synthetic.index)]
    if real_frames:
        real_all = pd.concat([to_frame(f) for f in real_frames], ignore_index=True)
        real_roots = pd.concat(
            [pd.Series(f.attrs["root"], index=range(len(f))) for f in real_frames], ignore_index=True
        )
        real_files = pd.concat(
            [pd.Series(f.attrs["file"], index=range(len(f))) for f in real_frames], ignore_index=True
        )
        picked = sample_real(real_all, len(synthetic), cfg.mix.real_ratio, strata(real_all, cfg.with_age), config.seed)
        parts.append(picked)
        roots.append(real_roots.loc[picked.index])
        files.append(real_files.loc[picked.index])
    mixed = pd.concat(parts, ignore_index=True)
    mixed_roots = pd.concat(roots, ignore_index=True)
    mixed_files = pd.concat(files, ignore_index=True)

    # person-disjoint splits: kept where given, by person elsewhere; nothing is dropped
    target = str(out_dir / "manifest.parquet")
    mixed["split"] = assign_splits(mixed, strata(mixed, cfg.with_age), cfg.split, target, config.seed)
    check_no_leaks(mixed, target)
    if cfg.link == "symlink":  # the links point into the inputs: readers of DIR may follow them there
        record_link_targets(out_dir, sorted(set(mixed_roots)))
    mixed = materialize(mixed, mixed_roots, out_dir, cfg.link, previous=previous, files=mixed_files)
    write_manifest(mixed, out_dir / "manifest.parquet", taxonomy)
    audit = audit_balanced(mixed, out_dir, cfg.audit)

    rejected = _rejected_table(result, gen_root)
    rejected = rejected[~rejected["id"].isin(mixed["id"])].reset_index(drop=True)  # partners kept for their fakes
    write_table(rejected, out_dir / "rejected.parquet")
    write_table(result.deficits, out_dir / "deficits.parquet")
    write_table(result.acceptance, out_dir / "acceptance.parquet")
    write_table(rounds, out_dir / "rounds.parquet")
    atomic_write_json(
        out_dir / "provenance.json", {**_provenance(measurers, result.rows, real_frames, cfg), "audit": audit}
    )
    # keys sorted: some defaults are built from sets, whose order changes from process to process
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=True))
    write_report(
        out_dir,
        taxonomy=taxonomy,
        acceptance=result.acceptance,
        rounds=rounds,
        deficits=result.deficits,
        rejected=rejected,
        manifest=mixed,
        synthetic_ids=set(synthetic["id"]),
        contact_per_cell=cfg.report.contact_per_cell,
        contact_thumb=cfg.report.contact_thumb,
        with_age=cfg.with_age,
        audit=audit,
    )
    log.info(
        "balance: %d kept of %d generated, %d real mixed in, splits %s, %d missing -> %s",
        len(synthetic),
        len(result.rows),
        sum(len(p) for p in parts[1:]),
        mixed["split"].value_counts().to_dict(),
        int(result.deficits["missing"].sum()) if len(result.deficits) else 0,
        out_dir,
    )
    return BalanceResult(out_dir, mixed, result.acceptance, result.deficits, rounds, rejected)


def _check_sources(frame: pd.DataFrame) -> None:
    """Every row's `source` is one plain path component, or a `ManifestError` naming its row."""
    for row, value in enumerate(frame["source"].tolist()):
        problem = component_problem(value)
        if problem is not None:
            raise ManifestError(
                frame.attrs["file"],
                f"source {problem} (it names the folder images/<source>/)",
                row=row,
                column="source",
            )


def _placed_before(out_dir: Path) -> set[str]:
    """The image paths an earlier run of this stage placed in `out_dir` (its manifest's)."""
    file = out_dir / MANIFEST_NAME
    if not file.is_file():
        return set()
    try:
        return {str(p) for p in pd.read_parquet(file, columns=["path"])["path"].dropna()}
    except (OSError, ValueError, KeyError):
        log.warning("balance: %s is unreadable; no earlier image is removed", file)
        return set()


def _rejected_table(result: RoundResult, gen_root: Path) -> pd.DataFrame:
    rows = result.rows.loc[result.rejects.index, list(REJECT_COLUMNS)]
    out = pd.concat([rows, result.rejects[["reason", "detail", "filter"]]], axis=1)
    out.insert(2, "root", str(gen_root))
    return out.reset_index(drop=True)


def _provenance(
    measurers: Measurers, rows: pd.DataFrame, real_frames: list[pd.DataFrame], cfg: BalanceConfig
) -> dict[str, Any]:
    """What the release's dataset card lists: every model that made or judged the images."""
    generators = sorted({str(g) for g in rows["generator"].dropna().unique()})
    methods = sorted({str(m) for m in rows["method"].dropna().unique()})
    real_sources = sorted({str(s) for f in real_frames for s in f["source"].dropna().unique()})
    return {
        "generators": generators,
        "methods": methods,
        "classifiers": [c.info for c in measurers.classifiers],
        "face_detector": cfg.face.detector,
        "identity_model": cfg.identity.model,
        "real_sources": real_sources,
        "filters": json.loads(json.dumps(cfg.model_dump(mode="json"), default=str)),
    }
