"""The final set's splits: the ones its rows already carry, and person-level splits for the rest.

Synthetic rows arrive split: generate split the people when it planned them, and made each fake
from two faces of one split. Real rows keep the official split their importer recorded
(`split.keep_existing`, the default), or are re-split by person when it is false. Whatever has
no split yet (a real dataset without official splits, an older generated folder) is split here
by person: rows joined by any identity column (`fairforge.splits.person_groups`) go to one split
together, stratified by source, cell and label (`person_splits`, scikit-learn's
StratifiedGroupKFold). A person group already holding a split pulls its unsplit rows into it; a
group holding two splits is an error naming its rows. Nothing is dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairforge.config.balance import SplitConfig
from fairforge.errors import ManifestError
from fairforge.splits import SPLITS, normalize_splits, person_groups, person_splits

#: The source generate writes; its splits are the plan's and are always kept.
SYNTHETIC_SOURCE = "fairforge-synth"


def _sources(frame: pd.DataFrame) -> pd.Series:
    if "source" not in frame.columns:
        return pd.Series("", index=frame.index)
    return frame["source"].astype(str)


def given_splits(frame: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    """The split each row keeps: every synthetic row's, and the real rows' when `keep_existing`."""
    if "split" not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    given = normalize_splits(frame["split"].astype(object)).where(frame["split"].notna(), None)
    if not cfg.keep_existing:
        given = given.where(_sources(frame) == SYNTHETIC_SOURCE, None)
    return given.where(given.isin(SPLITS), None)


def assign_splits(
    frame: pd.DataFrame, strata: pd.Series, cfg: SplitConfig, file: str = "manifest", seed: int = 0
) -> pd.Series:
    """A split per row (see the module docstring); `strata` is each row's cell and label."""
    given = given_splits(frame, cfg)
    groups = person_groups(frame)
    known = pd.DataFrame({"group": groups, "split": given.to_numpy(dtype=object)}).dropna()
    spread = known.groupby("group")["split"].nunique()
    if (spread > 1).any():
        group = spread.index[spread.to_numpy() > 1][0]
        rows = np.flatnonzero(groups == group)
        ids = frame["id"].iloc[rows].astype(str).tolist()[:5]
        splits = sorted(set(known.loc[known["group"] == group, "split"]))
        raise ManifestError(
            file,
            f"rows {ids} share a person but their splits are {splits}; with real datasets whose official "
            "splits share persons, set balance.split.keep_existing: false to re-split them by person",
            column="split",
        )
    fixed = known.drop_duplicates("group").set_index("group")["split"]
    out = pd.Series(groups).map(fixed).to_numpy(dtype=object)  # a person's given split holds for all its rows
    todo = np.flatnonzero(pd.isna(out))
    if todo.size:
        rest = frame.iloc[todo]
        keys = _sources(rest) + "|" + strata.iloc[todo].astype(str)
        out[todo] = person_splits(rest, keys, cfg.fractions, seed).to_numpy(dtype=object)
    return pd.Series(out, index=frame.index, name="split")


def split_table(frame: pd.DataFrame, by: tuple[str, ...] = ("source", "label", "method")) -> pd.DataFrame:
    """Rows per stratum and split, and each split's share of the stratum (the card's and tests' table)."""
    counts = frame.groupby([*by, "split"], dropna=False).size().unstack("split", fill_value=0)
    counts = counts.reindex(columns=[s for s in SPLITS if s in counts.columns])
    total = counts.sum(axis=1)
    shares = counts.div(total, axis=0).add_suffix("_share")
    return pd.concat([counts, shares], axis=1).assign(total=total).reset_index()


__all__ = ["SYNTHETIC_SOURCE", "assign_splits", "given_splits", "split_table"]
