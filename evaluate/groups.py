"""Rows -> demographic cells -> the groupings a report compares.

Why cells: every grouping the report uses (overall, gender, race, gender x race) is a union of
cells, one cell per (gender or `unknown`) x (race or `unknown`). Counting once per cell and summing
through a membership matrix gives every grouping's confusion counts from a single `bincount`, and
the bootstrap resamples the cells (its strata) once for all groupings, so every metric of one
resample is computed on the same resampled data. A row whose gender is `unknown` sits in a cell that
belongs to `overall` and to its race group, but to no gender or intersectional group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fairforge.errors import ManifestError
from fairforge.taxonomy import UNKNOWN, Taxonomy, group_name

#: The groupings a fairness metric is computed over, in report order.
ATTRIBUTES: tuple[str, ...] = ("intersectional", "gender", "race")
#: `overall` is the one-group grouping of every row (the reference of the sum-form metrics).
OVERALL = "overall"


@dataclass(frozen=True)
class Grouping:
    """One way to split the rows: group names and which cells make each group."""

    attribute: str
    names: tuple[str, ...]
    member: np.ndarray  # (n_cells, n_groups) bool

    @property
    def lookup(self) -> np.ndarray:
        """Cell -> group index (-1 for a cell in no group), for turning cell codes into group codes."""
        has = self.member.any(axis=1)
        return np.where(has, self.member.argmax(axis=1), -1).astype(np.int16)


@dataclass(frozen=True)
class Cells:
    """The cell of every row and the groupings built from cells."""

    code: np.ndarray  # (n_rows,) int16 cell index
    cell_names: tuple[tuple[str, str], ...]  # (gender, race) per cell, `unknown` allowed
    groupings: dict[str, Grouping]  # OVERALL and every name in ATTRIBUTES

    @property
    def n_cells(self) -> int:
        return len(self.cell_names)

    def group_codes(self, attribute: str) -> np.ndarray:
        """Group index of every row under `attribute` (-1 where the row is in no group)."""
        return self.groupings[attribute].lookup[self.code]


def build_groupings(taxonomy: Taxonomy) -> tuple[tuple[tuple[str, str], ...], dict[str, Grouping]]:
    """The cells of `taxonomy` and the groupings over them (independent of any data)."""
    genders = (*taxonomy.genders, UNKNOWN)
    races = (*taxonomy.races, UNKNOWN)
    cell_names = tuple((g, r) for g in genders for r in races)
    n_cells = len(cell_names)

    def grouping(attribute: str, names: Sequence[str], group_of: Callable[[str, str], str | None]) -> Grouping:
        member = np.zeros((n_cells, len(names)), dtype=bool)
        for c, (g, r) in enumerate(cell_names):
            name = group_of(g, r)
            if name is not None:
                member[c, names.index(name)] = True
        return Grouping(attribute, tuple(names), member)

    groupings = {
        OVERALL: grouping(OVERALL, [OVERALL], lambda g, r: OVERALL),
        "intersectional": grouping(
            "intersectional",
            list(taxonomy.groups),
            lambda g, r: group_name(g, r) if UNKNOWN not in (g, r) else None,
        ),
        "gender": grouping("gender", list(taxonomy.genders), lambda g, r: g if g != UNKNOWN else None),
        "race": grouping("race", list(taxonomy.races), lambda g, r: r if r != UNKNOWN else None),
    }
    return cell_names, groupings


def attribute_codes(
    values: Sequence[object] | np.ndarray | pa.Array | pa.ChunkedArray,
    vocabulary: Sequence[str],
    file: str,
    column: str,
) -> np.ndarray:
    """Index of each value in `vocabulary + (unknown,)`; null counts as `unknown`.

    A value outside the taxonomy is an error naming the first such row: a misspelt race must not
    quietly become `unknown` and vanish from every group. Arrow columns are dictionary-encoded
    (strings hashed once); numpy arrays are compared with each of the few allowed names.
    """
    allowed = (*vocabulary, UNKNOWN)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        encoded = pc.dictionary_encode(values)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        distinct = encoded.dictionary.to_pylist()
        lookup = np.array([allowed.index(v) if v in allowed else -1 for v in distinct], dtype=np.int16)
        lookup = np.append(lookup, np.int16(len(vocabulary)))  # the null slot
        codes = lookup[encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)]
    else:
        array = np.asarray(values)
        if array.dtype.kind not in "UO":
            array = array.astype(object)
        codes = np.full(array.size, -1, dtype=np.int16)
        for i, name in enumerate(allowed):
            codes[array == name] = i
        unmatched = np.flatnonzero(codes < 0)
        if unmatched.size:
            null = pd.isna(array[unmatched])
            codes[unmatched[null]] = len(vocabulary)
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        more = f" ({bad.size} rows in all)" if bad.size > 1 else ""
        value = values[int(bad[0])]
        value = value.as_py() if isinstance(value, pa.Scalar) else value
        raise ManifestError(
            file, f"{column} must be one of {list(allowed)}, got {value!r}{more}", row=int(bad[0]), column=column
        )
    return codes


def make_cells(
    genders: Sequence[object] | np.ndarray,
    races: Sequence[object] | np.ndarray,
    taxonomy: Taxonomy,
    file: str = "<arrays>",
) -> Cells:
    """Cells of the rows given their gender and race (taxonomy names or `unknown`)."""
    cell_names, groupings = build_groupings(taxonomy)
    g = attribute_codes(genders, taxonomy.genders, file, "gender")
    r = attribute_codes(races, taxonomy.races, file, "race")
    code = (g * (len(taxonomy.races) + 1) + r).astype(np.int16)
    return Cells(code=code, cell_names=cell_names, groupings=groupings)
