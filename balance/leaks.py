"""The leak check: no person in two splits, found independently of how the splits were made.

Rows and the identity values they carry (their own id, `identity`, `src_identity`, `src_id`,
`dst_id`) are the nodes of one sparse graph, each row joined to each of its values; a connected
component is everyone linked by any chain of shared faces and persons. A component whose rows
carry more than one split is a leak. The graph is solved by `scipy.sparse.csgraph`, not by the
union-find the splitter uses, so a bug in one is not hidden by the same bug in the other.
balance runs it before writing its manifest and release before writing shards: both refuse a
leaking set rather than publish it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fairforge.errors import ManifestError
from fairforge.splits import IDENTITY_COLUMNS


def _values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, values) of the non-empty entries of an identity column."""
    keep = (column.notna() & (column.astype(str) != "")).to_numpy()
    return np.flatnonzero(keep), column.to_numpy(dtype=object)[keep].astype(str)


def components(frame: pd.DataFrame, columns: tuple[str, ...] = IDENTITY_COLUMNS) -> np.ndarray:
    """The connected component of each row in the row-identity graph."""
    n = len(frame)
    rows, keys = [], []
    for column in columns:
        if column in frame.columns:
            r, v = _values(frame[column])
            rows.append(r)
            keys.append(v)
    if not rows:
        return np.arange(n)
    row_index = np.concatenate(rows)
    codes, _ = pd.factorize(np.concatenate(keys))
    value_nodes = n + codes
    size = n + (int(codes.max()) + 1 if codes.size else 0)
    graph = coo_matrix((np.ones(row_index.size, dtype=np.int8), (row_index, value_nodes)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return labels[:n]


def leaks(frame: pd.DataFrame, split_column: str = "split") -> pd.DataFrame:
    """One row per component that spans several splits: its size, splits, and a few ids and identities."""
    labels = components(frame)
    splits = frame[split_column].astype(object).where(frame[split_column].notna(), "<none>").to_numpy()
    table = pd.DataFrame({"component": labels, "split": splits})
    spread = table.groupby("component")["split"].nunique()
    bad = spread.index[spread.to_numpy() > 1]
    out = []
    for component in bad:
        members = np.flatnonzero(labels == component)
        part = frame.iloc[members]
        persons = sorted({str(v) for c in ("identity", "src_identity") if c in part for v in part[c].dropna()})
        out.append(
            {
                "component": int(component),
                "rows": int(members.size),
                "splits": sorted(set(splits[members])),
                "ids": part["id"].astype(str).tolist()[:5],
                "persons": persons[:5],
            }
        )
    return pd.DataFrame(out, columns=["component", "rows", "splits", "ids", "persons"])


def check_no_leaks(frame: pd.DataFrame, file: str) -> None:
    """Refuse a set where a person (or a face, or a fake made from them) is in two splits."""
    found = leaks(frame)
    if found.empty:
        return
    first = found.iloc[0]
    raise ManifestError(
        file,
        f"{len(found)} person group(s) span several splits; e.g. {first['rows']} rows linking persons "
        f"{first['persons']} (ids {first['ids']}) are in {first['splits']}. A person's images and every fake "
        "made from them must share one split",
        column="split",
    )


__all__ = ["check_no_leaks", "components", "leaks"]
