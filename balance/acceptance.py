"""The per-cell acceptance table: made vs surviving each filter vs kept, per (cell, method).

This table is the generator's own bias made visible: a cell whose images the classifier rarely
confirms (a generator that cannot draw old Asian women, say) shows a low acceptance rate here and
a large deficit, and the closed loop spends its top-ups there.
"""

from __future__ import annotations

import pandas as pd

from .cap import CELL, cell_keys
from .filters import REASONS, chain

KEYS = [*CELL, "method"]


def acceptance_table(frame: pd.DataFrame, rejects: pd.DataFrame, targets: pd.DataFrame, with_age: bool) -> pd.DataFrame:
    """Rows: every (cell, method) made or targeted. Columns: made, one count per reason,
    `after_<filter>` (alive after that filter), passed (survived every filter), kept, target,
    missing, acceptance (= passed / made)."""
    keyed = pd.concat([cell_keys(frame, with_age), frame[["method"]]], axis=1)
    made = keyed.value_counts(dropna=False).rename("made")
    table = targets.set_index(KEYS)[["target", "kept", "missing"]]
    index = table.index.union(made.index, sort=False)
    out = pd.DataFrame(index=index).join(made).fillna({"made": 0})
    reasons = pd.concat([keyed.loc[rejects.index], rejects[["reason", "filter"]]], axis=1)
    by_reason = reasons.groupby([*KEYS, "reason"], dropna=False).size().unstack("reason")
    for reason in REASONS:
        out[reason] = by_reason[reason] if reason in by_reason else 0
    alive = out["made"].copy()
    by_filter = reasons.groupby([*KEYS, "filter"], dropna=False).size().unstack("filter")
    for name, _ in chain():
        alive = alive - (by_filter[name].reindex(out.index).fillna(0) if name in by_filter else 0)
        out[f"after_{name}"] = alive
    out["passed"] = alive
    out = out.join(table).fillna(0)
    out = out.astype({c: "int64" for c in out.columns})
    out["acceptance"] = (out["passed"] / out["made"].where(out["made"] > 0)).astype(float)
    return out.reset_index()
