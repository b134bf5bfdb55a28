"""Targets per (cell, method), the cap, and the deficits the generator tops up.

A cell is gender x race (x age when `with_age`); its `target_per_cell` images are shared among
methods by `method_mix` with largest-remainder rounding, so the per-method targets always sum to
the cell's target exactly. Capping keeps the first rows in input order (the plan's order, then
each top-up round's), so the same input always gives the same set.
"""

from __future__ import annotations

import math

import pandas as pd

from fairforge.config.balance import BalanceConfig
from fairforge.errors import ConfigError
from fairforge.taxonomy import UNKNOWN, Taxonomy

CELL = ("gender", "race", "age")
DEFICIT_COLUMNS = ("gender", "race", "age", "method", "missing")


def method_targets(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Split `total` over methods in proportion to `mix`; largest remainder, ties in mix order."""
    weight = sum(mix.values())
    exact = {m: total * w / weight for m, w in mix.items()}
    counts = {m: math.floor(v) for m, v in exact.items()}
    order = sorted(mix, key=lambda m: (-(exact[m] - counts[m]), list(mix).index(m)))
    for m in order[: total - sum(counts.values())]:
        counts[m] += 1
    return counts


def target_cells(cfg: BalanceConfig, taxonomy: Taxonomy) -> list[tuple[str, str, str]]:
    """The (gender, race, age) cells with a target, in taxonomy order; age is `unknown` when cells
    have no age. `cells` keys are `gender-race-age` or a group `gender-race` (all its ages)."""
    cells = taxonomy.cells(with_age=cfg.with_age)
    if cfg.with_age and cfg.ages is not None:
        unknown = [a for a in cfg.ages if a not in taxonomy.ages]
        if unknown:
            raise ConfigError(f"balance.ages: {unknown} are not age bins of the taxonomy {list(taxonomy.ages)}")
        cells = [c for c in cells if c[2] in cfg.ages]
    if cfg.cells is None:
        return cells
    keys = {}
    for cell in cells:
        keys.setdefault("-".join(cell[:2]), set()).add(cell)
        if cfg.with_age:
            keys.setdefault("-".join(cell), set()).add(cell)
    missing = [k for k in cfg.cells if k not in keys]
    if missing:
        raise ConfigError(f"balance.cells: {missing} are not cells of the taxonomy; e.g. {next(iter(keys))!r}")
    wanted = set().union(*(keys[k] for k in cfg.cells))
    return [c for c in cells if c in wanted]


def targets(cfg: BalanceConfig, taxonomy: Taxonomy) -> pd.DataFrame:
    """One row per (cell, method) with its `target`, in cell then method order."""
    per_method = method_targets(cfg.target_per_cell, cfg.method_mix)
    rows = [
        {"gender": g, "race": r, "age": a, "method": m, "target": n}
        for g, r, a in target_cells(cfg, taxonomy)
        for m, n in per_method.items()
        if n > 0
    ]
    return pd.DataFrame(rows, columns=[*CELL, "method", "target"])


def cell_keys(frame: pd.DataFrame, with_age: bool) -> pd.DataFrame:
    """The (gender, race, age) a row counts toward; age `unknown` when cells have no age."""
    keys = frame[["gender", "race", "age"]].astype(object).fillna(UNKNOWN)
    if not with_age:
        keys = keys.assign(age=UNKNOWN)
    return keys


def cap(frame: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy) -> tuple[pd.Index, pd.DataFrame, pd.DataFrame]:
    """Keep at most the target per (cell, method).

    Returns (kept index, rejects with reason/detail, the target table with `kept` and `missing`).
    """
    table = targets(cfg, taxonomy)
    keyed = pd.concat([cell_keys(frame, cfg.with_age), frame[["method"]]], axis=1)
    target_of = {tuple(r[:4]): r[4] for r in table.itertuples(index=False)}
    rank = keyed.groupby(list(keyed.columns), sort=False, dropna=False).cumcount()
    limits = pd.Series([target_of.get(tuple(k), 0) for k in keyed.itertuples(index=False)], index=frame.index)
    untargeted = frame.index[limits == 0]
    surplus = frame.index[(limits > 0) & (rank >= limits)]
    kept = frame.index[(limits > 0) & (rank < limits)]
    rejects = pd.concat(
        [
            pd.DataFrame(
                {"reason": "not_targeted", "detail": "cell or method has no target (balance.cells / method_mix)"},
                index=untargeted,
            ),
            pd.DataFrame(
                {"reason": "surplus", "detail": [f"cell already holds its target of {limits[i]}" for i in surplus]},
                index=surplus,
            ),
        ]
    ).assign(filter="cap")
    counts = keyed.loc[kept].value_counts(dropna=False)
    table["kept"] = [int(counts.get(tuple(r[:4]), 0)) for r in table.itertuples(index=False)]
    table["missing"] = table["target"] - table["kept"]
    return kept, rejects, table


def deficits(table: pd.DataFrame) -> pd.DataFrame:
    """The contract generate `--top-up` reads: gender, race, age, method (str), missing (int64 > 0)."""
    out = table.loc[table["missing"] > 0, list(DEFICIT_COLUMNS)].reset_index(drop=True)
    return out.astype({"gender": str, "race": str, "age": str, "method": str, "missing": "int64"})
