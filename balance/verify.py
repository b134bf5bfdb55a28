"""One verification round: measure, filter, cap, count. No files written here.

`verify_round` is what the closed loop repeats after every top-up; it is a pure function of the
generated manifest and the measurements (cached), so a rerun gives the same verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fairforge.config.balance import BalanceConfig
from fairforge.taxonomy import Taxonomy

from .acceptance import acceptance_table
from .cap import cap, deficits
from .filters import run_filters
from .measure import MeasureCache, Measurers, measure

#: Manifest columns the measurement pass fills (the file as it is, and the classifier's verdict).
MEASURED = ("width", "height", "sha256", "sharpness", "phash", "pred_gender", "pred_race", "pred_age")
MEASURED_CONF = ("pred_gender_conf", "pred_race_conf", "pred_age_conf")


@dataclass
class RoundResult:
    rows: pd.DataFrame  # the generated manifest with measurements (plus `readable`, `embedding`)
    kept: pd.Index  # rows kept after filters and cap
    rejects: pd.DataFrame  # reason / detail / filter per rejected row (index into `rows`)
    acceptance: pd.DataFrame
    deficits: pd.DataFrame


def attach_measurements(frame: pd.DataFrame, measured: pd.DataFrame, cfg: BalanceConfig) -> pd.DataFrame:
    """The manifest with measured columns replacing the manifest's (the file is the truth)."""
    rows = frame.copy()
    for column in (*MEASURED, *MEASURED_CONF, "readable", "embedding"):
        rows[column] = measured[column].to_numpy()
    if cfg.face.detector not in ("manifest", "none"):
        rows["face_score"] = measured["face_score"].to_numpy()
    return rows


def verify_round(
    frame: pd.DataFrame,
    root: Path,
    measurers: Measurers,
    cache: MeasureCache,
    cfg: BalanceConfig,
    taxonomy: Taxonomy,
    progress: bool = True,
) -> RoundResult:
    for i, clf in enumerate(measurers.classifiers):
        clf.label_map.require([a for a in cfg.verify.match if a in clf.attributes], f"balance.classifiers[{i}]")
    measured = measure(frame, root, measurers, cache, progress=progress)
    rows = attach_measurements(frame, measured, cfg)
    alive, filtered = run_filters(rows, cfg, taxonomy)
    kept, capped, table = cap(rows.loc[alive], cfg, taxonomy, made=rows)
    rejects = pd.concat([filtered, capped]).loc[lambda r: ~r.index.duplicated()]
    acceptance = acceptance_table(rows, rejects, table, cfg.with_age)
    return RoundResult(
        rows, kept, rejects.reindex(rows.index.intersection(rejects.index, sort=False)), acceptance, deficits(table)
    )


def with_partners(rows: pd.DataFrame, kept: pd.Index) -> pd.Index:
    """`kept` plus the real partner (`dst_id`) of every kept fake that is a row of the set.

    A fake is only evidence of its manipulation next to the real row it equals outside the face
    (a transformed SBI target, a swap's target face); capping or filtering that row away would
    leave the fake without it, so the partner follows its fake whatever its own verdict.
    """
    chosen = rows.loc[kept]
    wanted = set(chosen.loc[chosen["label"] == 1, "dst_id"].dropna()) - set(chosen["id"])
    extra = rows.index[rows["id"].isin(wanted) & (rows["label"] == 0)]
    return kept.append(extra.difference(kept))
