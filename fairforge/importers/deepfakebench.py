"""DeepfakeBench dataset JSONs -> a manifest.

DeepfakeBench (SCLBD/DeepfakeBench, `preprocessing/rearrange.py`) describes each dataset as
`{dataset: {label_name: {split: {compression: {video: {"label": label_name, "frames": [paths]}}}}}}`;
datasets without compression levels (Celeb-DF, DFDC, ...) omit that level. Label names
(`FF-real`, `FF-DF`, `CelebDFv2_fake`, ...) are mapped to 0/1 by a label map, as DeepfakeBench's
own `label_dict` does. Frame paths are whatever the JSON's author had (absolute, or `./datasets\\...`
with Windows separators); they are resolved against `--images-root`.

DeepfakeBench lists some videos under several splits (Celeb-DF's test videos also as val, all of
DFD under every split). A frame is imported once, in the first split of `SPLIT_PRIORITY` that lists
it, so no test frame is ever also a training frame. The same frame twice within one split is a
duplicate (a bad row).

DeepfakeBench has no demographics: gender, race and age are `unknown` unless an attributes CSV maps
frames (`path`) or videos (`video`, optionally with `dataset`) to `gender`, `race` (and `age`).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairforge.errors import ConfigError, ManifestError
from fairforge.splits import SPLITS, normalize_split
from fairforge.taxonomy import UNKNOWN, Taxonomy

from .common import ImportOptions, Problems, finish, read_table_file, relative_paths, require_columns
from .persons import persons

log = logging.getLogger(__name__)

#: DeepfakeBench's FaceForensics++ label names -> the manipulation method
FF_METHODS: dict[str, str] = {
    "FF-DF": "Deepfakes",
    "FF-F2F": "Face2Face",
    "FF-FS": "FaceSwap",
    "FF-NT": "NeuralTextures",
    "FF-FH": "FaceShifter",
}
#: DeepfakeBench dataset names -> fairforge source names (others: lower-cased, non-alphanumerics -> '-')
SOURCES: dict[str, str] = {
    "FaceForensics++": "ffpp",
    **{name: "ffpp" for name in FF_METHODS},
    "FaceShifter": "ffpp",
    "DeepFakeDetection": "dfd",
    "Celeb-DF-v2": "celebdf",
    "Celeb-DF-v1": "celebdf-v1",
    "DFDC": "dfdc",
    "DFDCP": "dfdcp",
}
#: a frame listed under several splits is kept in the first of these
SPLIT_PRIORITY: tuple[str, ...] = ("test", "validation", "train")
#: the flattened JSON fields, one row per frame (also the fields of rejected.parquet)
FIELDS: tuple[str, ...] = ("dataset", "label_name", "split", "compression", "video", "frame")


def source_name(dataset: str) -> str:
    return SOURCES.get(dataset) or re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-")


def default_label(name: str) -> int:
    """DeepfakeBench's label names say what they are: `*real*` is 0, everything else fake."""
    return 0 if "real" in name.lower() else 1


def parse_label_map(items: list[str] | None) -> dict[str, int]:
    """`["FF-real=0", "FF-DF=1"]` -> {"FF-real": 0, "FF-DF": 1}."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or value.strip() not in ("0", "1"):
            raise ConfigError(f"--label-map: expected NAME=0 or NAME=1, got {item!r}")
        out[name] = int(value)
    return out


def _videos(node: Any, where: str, compression: str, file: str) -> Mapping[str, Any]:
    """The video mapping under a split node, stepping through the compression level if there is one."""
    if not isinstance(node, dict):
        raise ManifestError(file, f"{where}: expected an object, got {type(node).__name__}")
    if all(isinstance(v, dict) and "frames" in v for v in node.values()):
        return node
    if compression not in node:
        raise ManifestError(
            file, f"{where}: no compression level {compression!r}; found {sorted(node)} (--compression)"
        )
    videos = node[compression]
    if not isinstance(videos, dict):
        raise ManifestError(file, f"{where}/{compression}: expected an object of videos, got {type(videos).__name__}")
    return videos


def flatten(
    data: Any, file: str, compression: str, datasets: list[str] | None, splits: list[str] | None
) -> pd.DataFrame:
    """One row per frame with the JSON keys that lead to it (`FIELDS`)."""
    if not isinstance(data, dict):
        raise ManifestError(file, f"expected a JSON object of datasets, got {type(data).__name__}")
    unknown = sorted(set(datasets or []) - set(data))
    if unknown:
        raise ConfigError(f"--dataset: {unknown} not in {file}; it holds {sorted(data)}")
    records: list[tuple[str, str, str, str | None, str, str]] = []
    for dataset, labels in data.items():
        if datasets and dataset not in datasets:
            continue
        if not isinstance(labels, dict):
            raise ManifestError(file, f"{dataset}: expected an object of label names, got {type(labels).__name__}")
        for label_name, split_nodes in labels.items():
            if not isinstance(split_nodes, dict):
                raise ManifestError(file, f"{dataset}/{label_name}: expected an object of splits")
            for split_name, node in split_nodes.items():
                split = normalize_split(split_name)
                if split not in SPLITS:
                    raise ManifestError(
                        file, f"{dataset}/{label_name}: unknown split {split_name!r}; expected {list(SPLITS)}"
                    )
                if splits and split not in [normalize_split(s) for s in splits]:
                    continue
                where = f"{dataset}/{label_name}/{split}"
                videos = _videos(node, where, compression, file)
                level = None if videos is node else compression
                for video, entry in videos.items():
                    frames = entry.get("frames") if isinstance(entry, dict) else None
                    if not isinstance(frames, list):
                        raise ManifestError(file, f"{where}/{video}: expected {{'label': ..., 'frames': [...]}}")
                    name = str(entry.get("label", label_name))
                    records.extend((dataset, name, split, level, str(video), str(f)) for f in frames)
    return pd.DataFrame.from_records(records, columns=list(FIELDS))


def keep_one_split(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop a frame's listings in lower-priority splits (see the module docstring)."""
    key = [posixpath.normpath(f.replace("\\", "/")) for f in frame["frame"]]
    rank = frame["split"].map({s: i for i, s in enumerate(SPLIT_PRIORITY)}).to_numpy()
    best = pd.Series(rank).groupby(pd.Series(key)).transform("min").to_numpy()
    drop = rank != best
    if drop.any():
        log.info("%d frame listing(s) also listed under a higher-priority split were dropped", int(drop.sum()))
    return frame.loc[~drop]


def read_attributes(
    file: str | os.PathLike[str], taxonomy: Taxonomy, images_root: Path, strip_prefix: str | None
) -> tuple[str, pd.DataFrame]:
    """The attributes CSV as (key kind, frame indexed by key with gender/race/age on the taxonomy).

    The key kind is `path` (a frame's path), `dataset/video` or `video` (every frame of the video).
    """
    name = str(file)
    table = read_table_file(file)
    column = "path" if "path" in table.columns else "video"
    require_columns(table, [column, "gender", "race"], name)
    problems = Problems(name, len(table), skip_bad=False)
    if column == "path":
        kind = "path"
        keys = pd.Series(relative_paths(table["path"].tolist(), images_root, problems, "path", strip_prefix))
    elif "dataset" in table.columns:
        kind = "dataset/video"
        keys = table["dataset"].str.strip().map(source_name) + "/" + table["video"].str.strip()
    else:
        kind = "video"
        keys = table["video"].str.strip()
    problems.check()
    dup = keys.duplicated().to_numpy()
    problems.add(dup, column, lambda i: f"{kind} {keys.iat[i]!r} is listed twice")
    out = pd.DataFrame(index=keys.to_numpy())
    for attribute in ("gender", "race", "age"):
        if attribute not in table.columns:
            out[attribute] = UNKNOWN
            continue
        raw = table[attribute].str.strip()
        mapped = np.array([taxonomy.map_label(attribute, v) for v in raw], dtype=object)
        bad = (mapped == UNKNOWN) & ~raw.str.lower().isin(["", UNKNOWN]).to_numpy()
        allowed = list(taxonomy.allowed(attribute))
        problems.add(
            bad, attribute, lambda i, a=attribute, r=raw, v=allowed: f"{r.iat[i]!r} is not a {a} of the taxonomy {v}"
        )
        out[attribute] = mapped
    problems.check()
    return kind, out


def import_deepfakebench(
    json_file: str | os.PathLike[str],
    images_root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    label_map: Mapping[str, int] | None = None,
    compression: str = "c23",
    datasets: list[str] | None = None,
    splits: list[str] | None = None,
    attributes: str | os.PathLike[str] | None = None,
    strip_prefix: str | None = None,
    options: ImportOptions = ImportOptions(),
) -> Path:
    """Import a DeepfakeBench dataset JSON into `out/manifest.parquet`; returns the manifest path.

    `label_map` overrides the default rule (`*real*` -> 0, else 1) per label name; `datasets` and
    `splits` select parts of the JSON; rows are the JSON's frames, numbered in JSON order.
    """
    file = str(json_file)
    images_root = Path(images_root)
    try:
        with open(json_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ManifestError(file, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(file, f"not valid JSON ({exc})") from None
    frame = keep_one_split(flatten(data, file, compression, datasets, splits))
    if frame.empty:
        raise ManifestError(
            file, f"no frames found (compression {compression!r}, datasets {datasets}, splits {splits})"
        )
    numbers = frame.index.to_numpy() + 1
    frame = frame.reset_index(drop=True)
    problems = Problems(file, len(frame), options.skip_bad, row_numbers=numbers)

    names = sorted(frame["label_name"].unique())
    labels = {name: (label_map or {}).get(name, default_label(name)) for name in names}
    log.info("label map: %s", labels)
    label = frame["label_name"].map(labels).to_numpy()
    source = frame["dataset"].map(source_name)
    method = np.where(label == 0, "real", frame["label_name"].map(lambda n: FF_METHODS.get(n, n))).astype(object)
    rel = relative_paths(frame["frame"].tolist(), images_root, problems, "frames", strip_prefix)
    problems.check()
    person: list[str] = []
    src_person: list[str | None] = []
    for name, video in zip(source, frame["video"]):
        found = persons(name, [video])
        person.append(found[0][0])
        src_person.append(found[1][0])
    rows = pd.DataFrame(
        {
            "id": [None if p is None else f"{s}/{p}" for s, p in zip(source, rel)],
            "label": label,
            "method": method,
            "source": source,
            "domain": np.where(source == "ffpp", method, source),
            "split": frame["split"],
            "identity": person,
            "src_identity": src_person,
            "gender": UNKNOWN,
            "race": UNKNOWN,
            "age": UNKNOWN,
        }
    )
    if attributes is not None:
        kind, table = read_attributes(attributes, options.taxonomy, images_root, strip_prefix)
        keys = {"path": pd.Series(rel, dtype=object), "dataset/video": source + "/" + frame["video"], "video": frame["video"]}[kind]
        found = table.reindex(keys.to_numpy())
        for attribute in ("gender", "race", "age"):
            rows[attribute] = found[attribute].fillna(UNKNOWN).to_numpy()
        log.info("attributes found for %d of %d frame(s)", int(found["gender"].notna().sum()), len(rows))
    return finish(
        rows,
        rel,
        original=frame,
        problems=problems,
        images_root=images_root,
        out=out,
        options=options,
        path_column="frames",
    )
