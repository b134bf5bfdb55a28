"""Targets per (cell, method), the cap, and the deficits the generator tops up.

A cell is gender x race (x age when `with_age`); its `target_per_cell` images are shared among
methods by `method_mix` with largest-remainder rounding, so the per-method targets always sum to
the cell's target exactly. Capping keeps the first rows in input order (the plan's order, then
each top-up round's), so the same input always gives the same set.

Splits: generate gave every image its split when it planned it, so the first `target` images
made for a (cell, method) hold that stratum's split shares. The cap keeps each split's share of
them (a rejected validation face is replaced by a validation face, not by a training one), and
the deficits name the split each missing image must be made in; generate's top-up makes it there.
"""

from __future__ import annotations

import math

import pandas as pd

from fairforge.config.balance import BalanceConfig
from fairforge.errors import ConfigError
from fairforge.taxonomy import UNKNOWN, Taxonomy

CELL = ("gender", "race", "age")
DEFICIT_COLUMNS = ("gender", "race", "age", "method", "missing")
#: the deficits' split column (null: any split; generate then continues the cell's split sequence)
DEFICIT_SPLIT = "split"


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


def _split_of(frame: pd.DataFrame) -> pd.Series:
    if "split" not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame["split"].astype(object).where(frame["split"].notna(), None)


def cap(
    frame: pd.DataFrame, cfg: BalanceConfig, taxonomy: Taxonomy, made: pd.DataFrame | None = None
) -> tuple[pd.Index, pd.DataFrame, pd.DataFrame]:
    """Keep at most the target per (cell, method), each split at most its share of it.

    `frame`: the rows that passed the filters; `made`: every row made (passed or not), in order,
    whose first `target` rows per (cell, method) fix each split's share (default: `frame`).
    Returns (kept index, rejects with reason/detail, the target table with `kept` and `missing`;
    `table.attrs["by_split"]` holds the missing images per split).
    """
    made = frame if made is None else made
    table = targets(cfg, taxonomy)
    key_columns = [*CELL, "method"]
    keyed = pd.concat([cell_keys(frame, cfg.with_age), frame[["method"]]], axis=1)
    made_keyed = pd.concat([cell_keys(made, cfg.with_age), made[["method"]]], axis=1)
    target_of = {tuple(r[:4]): r[4] for r in table.itertuples(index=False)}
    # each split's share: the splits of the first `target` rows made per (cell, method)
    made_rank = made_keyed.groupby(key_columns, sort=False, dropna=False).cumcount()
    made_limit = pd.Series([target_of.get(tuple(k), 0) for k in made_keyed.itertuples(index=False)], index=made.index)
    first = made_keyed.assign(split=_split_of(made).fillna("")).loc[made_rank < made_limit]
    share = first.value_counts(dropna=False).to_dict()  # (cell, method, split) -> count
    made_count = first[key_columns].value_counts(dropna=False).to_dict()

    split = _split_of(frame).fillna("")
    rank = keyed.assign(split=split).groupby([*key_columns, "split"], sort=False, dropna=False).cumcount()
    targeted = pd.Series([tuple(k) in target_of for k in keyed.itertuples(index=False)], index=frame.index)
    limits = pd.Series(
        [share.get((*k, s), 0) for k, s in zip(keyed.itertuples(index=False), split)], index=frame.index
    )
    untargeted = frame.index[~targeted]
    surplus = frame.index[targeted & (rank >= limits)]
    kept = frame.index[targeted & (rank < limits)]
    rejects = pd.concat(
        [
            pd.DataFrame(
                {"reason": "not_targeted", "detail": "cell or method has no target (balance.cells / method_mix)"},
                index=untargeted,
            ),
            pd.DataFrame(
                {
                    "reason": "surplus",
                    "detail": [f"cell already holds its target of {target_of[tuple(keyed.loc[i])]}" for i in surplus],
                },
                index=surplus,
            ),
        ]
    ).assign(filter="cap")
    kept_split = keyed.loc[kept].assign(split=split.loc[kept]).value_counts(dropna=False).to_dict()
    # (cell, method, split) -> missing; made-without-split and never-made both land on split None
    by_split: dict[tuple, int] = {}
    for record in table.itertuples(index=False):
        key = tuple(record[:4])
        for (*k, s), n in share.items():
            if tuple(k) == key and n > kept_split.get((*key, s), 0):
                slot = (*key, s or None)
                by_split[slot] = by_split.get(slot, 0) + n - kept_split.get((*key, s), 0)
        unmade = record.target - made_count.get(key, 0)
        if unmade > 0:  # never made at all: no split known yet
            by_split[(*key, None)] = by_split.get((*key, None), 0) + unmade
    counts = keyed.loc[kept].value_counts(dropna=False)
    table["kept"] = [int(counts.get(tuple(r[:4]), 0)) for r in table.itertuples(index=False)]
    table["missing"] = table["target"] - table["kept"]
    table.attrs["by_split"] = pd.DataFrame(
        [(*slot, n) for slot, n in by_split.items()], columns=[*key_columns, DEFICIT_SPLIT, "missing"]
    )
    return kept, rejects, table


def deficits(table: pd.DataFrame) -> pd.DataFrame:
    """The contract generate `--top-up` reads: gender, race, age, method (str), split (str or null),
    missing (int64 > 0); one row per split a (cell, method) is short in."""
    by_split = table.attrs.get("by_split")
    if by_split is None:
        out = table.loc[table["missing"] > 0, list(DEFICIT_COLUMNS)].reset_index(drop=True)
        return out.astype({"gender": str, "race": str, "age": str, "method": str, "missing": "int64"})
    out = by_split.loc[by_split["missing"] > 0].reset_index(drop=True)
    out = out[[*DEFICIT_COLUMNS[:4], DEFICIT_SPLIT, "missing"]]
    return out.astype({"gender": str, "race": str, "age": str, "method": str, DEFICIT_SPLIT: object, "missing": "int64"})
