"""PG-FDD / DAW-FDD / AI-Face annotation CSVs -> a manifest.

The CSVs carry `img_path, label, ismale, isasian, iswhite, isblack, intersec_label[, spe_label]`:
+1/-1 attribute flags and an intersectional group code (docs/manifest.md, "Importers"). The group code is the
source of truth for gender and race (it is what the published fairness numbers are computed over);
the flags are redundant, so a row whose flags contradict its code is reported instead of guessed.
FF++ and DFDC use 8 groups, DFD and Celeb-DF 6 (no Asian group; their CSVs may lack `isasian`).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import numpy as np
import pandas as pd

from fairforge.errors import ConfigError
from fairforge.splits import SPLITS, normalize_split
from fairforge.taxonomy import PGFDD_GROUPS_6, PGFDD_GROUPS_8, UNKNOWN, group_name

from .common import ImportOptions, Problems, finish, read_table_file, relative_paths, require_columns
from .persons import persons

#: group tables by size (docs/manifest.md, "Importers")
GROUP_TABLES: dict[int, tuple[tuple[str, str], ...]] = {8: PGFDD_GROUPS_8, 6: PGFDD_GROUPS_6}
#: which table each benchmark dataset uses; other datasets need `groups=`
DATASET_GROUPS: dict[str, int] = {"ffpp": 8, "dfdc": 8, "dfd": 6, "celebdf": 6}
#: `spe_label` -> manipulation method (FF++'s four methods plus FaceShifter)
SPE_METHODS: tuple[str, ...] = ("real", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
#: +1/-1 race flags and the race each one asserts
RACE_FLAGS: dict[str, str] = {"isasian": "Asian", "iswhite": "White", "isblack": "Black"}
#: datasets whose domain (for domain-generalization methods) is the manipulation method
METHOD_DOMAINS: frozenset[str] = frozenset({"ffpp"})


def _identity_video(rel: str) -> str:
    """The video folder: frames of one video share it (`.../000_003/frame0.png` -> `000_003`)."""
    return posixpath.basename(posixpath.dirname(rel)) or posixpath.splitext(rel)[0]


def _identity_file(rel: str) -> str:
    """Every image its own identity (image datasets without videos, e.g. GAN faces)."""
    return posixpath.splitext(rel)[0]


#: how the `identity` column is derived from an image path
IDENTITY_RULES = {"video": _identity_video, "file": _identity_file}


def _integers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as int64 and a mask of those that are integers ('1', '+1', '1.0')."""
    numbers = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(numbers) & (np.floor(numbers) == numbers)
    return np.where(ok, numbers, 0).astype(np.int64), ok


def group_count(dataset: str, groups: int | None) -> int:
    """The group table size for `dataset` (`groups` overrides)."""
    if groups is not None:
        if groups not in GROUP_TABLES:
            raise ConfigError(f"--groups: expected one of {sorted(GROUP_TABLES)}, got {groups!r}")
        return groups
    if dataset not in DATASET_GROUPS:
        raise ConfigError(
            f"--dataset: {dataset!r} has no known group table; known {sorted(DATASET_GROUPS)}, or pass --groups 6|8"
        )
    return DATASET_GROUPS[dataset]


def import_pgfdd(
    csv: str | os.PathLike[str],
    images_root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    dataset: str,
    split: str,
    *,
    groups: int | None = None,
    strip_prefix: str | None = None,
    identity: str = "video",
    options: ImportOptions = ImportOptions(),
) -> Path:
    """Import one PG-FDD-style CSV (one dataset, one split) into `out/manifest.parquet`.

    Returns the manifest path. Bad rows raise `ManifestError` naming the CSV, the 1-based data row
    and the column, or with `options.skip_bad` go to `out/rejected.parquet`.
    """
    split = str(normalize_split(split))
    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {list(SPLITS)}, got {split!r}")
    n_groups = group_count(dataset, groups)
    table = GROUP_TABLES[n_groups]
    if identity not in IDENTITY_RULES:
        raise ConfigError(f"--identity: expected one of {sorted(IDENTITY_RULES)}, got {identity!r}")
    file = str(csv)
    frame = read_table_file(csv)
    flags = ["ismale", *(f for f in RACE_FLAGS if n_groups == 8 or f != "isasian")]
    require_columns(frame, ["img_path", "label", *flags, "intersec_label"], file)
    problems = Problems(file, len(frame), options.skip_bad)

    # labels: 0/1, or the +1/-1 encoding of the flags (-1 real)
    label, ok = _integers(frame["label"])
    signed = ok & (label == -1)
    if signed.any():
        ok &= np.isin(label, (-1, 1))
        label = np.where(label == -1, 0, label)
    else:
        ok &= np.isin(label, (0, 1))
    problems.add(~ok, "label", lambda i: f"label must be 0/1 (or -1/+1), got {frame['label'].iat[i]!r}")

    # group code -> gender, race
    code, ok = _integers(frame["intersec_label"])
    ok &= (code >= 0) & (code < n_groups)
    problems.add(
        ~ok,
        "intersec_label",
        lambda i: (
            f"unknown group code {frame['intersec_label'].iat[i]!r}: {dataset} uses {n_groups} groups 0..{n_groups - 1}"
        ),
    )
    genders = np.array([g for g, _ in table] + [UNKNOWN], dtype=object)[np.where(ok, code, -1)]
    races = np.array([r for _, r in table] + [UNKNOWN], dtype=object)[np.where(ok, code, -1)]

    # the +1/-1 flags must agree with the code
    for flag in flags:
        value, valid = _integers(frame[flag])
        valid &= np.isin(value, (-1, 1))
        problems.add(~valid, flag, lambda i, f=flag: f"{f} must be +1 or -1, got {frame[f].iat[i]!r}")
        expected = genders == "male" if flag == "ismale" else races == RACE_FLAGS[flag]
        wrong = valid & ok & ((value == 1) != expected)
        problems.add(
            wrong,
            flag,
            lambda i, f=flag: (
                f"{f}={frame[f].iat[i]} contradicts intersec_label {code[i]} ({group_name(genders[i], races[i])})"
            ),
        )

    # manipulation method
    if "spe_label" in frame.columns:
        spe, ok_spe = _integers(frame["spe_label"])
        ok_spe &= (spe >= 0) & (spe < len(SPE_METHODS))
        problems.add(
            ~ok_spe,
            "spe_label",
            lambda i: f"spe_label must be 0..{len(SPE_METHODS) - 1}, got {frame['spe_label'].iat[i]!r}",
        )
        clash = ok_spe & problems.good & ((spe == 0) != (label == 0))
        problems.add(
            clash, "spe_label", lambda i: f"spe_label {spe[i]} ({SPE_METHODS[spe[i]]}) contradicts label {label[i]}"
        )
        method = np.array(SPE_METHODS, dtype=object)[np.where(ok_spe, spe, 0)]
    else:
        method = np.where(label == 0, "real", dataset).astype(object)
    problems.check()

    rel = relative_paths(frame["img_path"].tolist(), Path(images_root), problems, "img_path", strip_prefix)
    problems.check()
    rule = IDENTITY_RULES[identity]
    units = [None if p is None else rule(p) for p in rel]
    # videos named after their persons (FF++ `t_s`, Celeb-DF `idN`) give the persons, else the video
    person, src_person = persons(dataset, [u or "" for u in units]) if identity == "video" else ([], [])
    if identity != "video":
        person, src_person = [f"{dataset}/{u}" for u in units], [None] * len(units)
    rows = pd.DataFrame(
        {
            "id": [None if p is None else f"{dataset}/{p}" for p in rel],
            "label": label,
            "method": method,
            "source": dataset,
            "domain": method if dataset in METHOD_DOMAINS else dataset,
            "split": split,
            "identity": [None if u is None else p for u, p in zip(units, person)],
            "src_identity": src_person,
            "gender": genders,
            "race": races,
            "age": UNKNOWN,
        }
    )
    return finish(
        rows,
        rel,
        original=frame,
        problems=problems,
        images_root=Path(images_root),
        out=out,
        options=options,
        path_column="img_path",
    )
