"""Sets at realistic size, built in memory in seconds: a generate plan and an FF++-like dataset.

The synthetic set is generate's own plan (`build_plan`, no models), so the tests see exactly the
splits and pairs a real run makes; the FF++-like set has FaceForensics++'s structure: persons
000..N-1, each with one source video, and for every pair (t, s) of the official pair list the
manipulated videos `t_s` and `s_t` for each of the four methods.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fairforge.config.generate import GenerateConfig
from fairforge.generate.plan import PlanContext, build_plan
from fairforge.importers.persons import persons
from fairforge.manifest import to_frame
from fairforge.splits import split_sequence
from fairforge.taxonomy import Taxonomy

TAXONOMY = Taxonomy()
GENERATORS = {"diffusion": "tiny:diffusion", "sbi": "sbi", "inswapper": "inswapper_128:0123456789abcdef"}
FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
FF_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
GENDERS = ("male", "female")
RACES = ("Asian", "White", "Black", "Others")


def eight_cells(age: str = "20-29") -> list[tuple[str, str, str]]:
    return [(g, r, age) for g in GENDERS for r in RACES]


def plan_rows(
    folder: Path,
    faces: int = 100,
    cells: list[tuple[str, str, str]] | None = None,
    fractions: dict[str, float] | None = None,
    cfg: GenerateConfig | None = None,
    pool=None,  # type: ignore[no-untyped-def]
) -> pd.DataFrame:
    """The plan's rows for `faces` images per cell and method, as manifest rows (no images)."""
    cfg = cfg or GenerateConfig()
    ctx = PlanContext(0, TAXONOMY, GENERATORS, "r", splits=fractions or FRACTIONS)
    plan = build_plan(cfg, folder, ctx, cells or eight_cells(), faces, None, pool)
    return as_manifest(plan.rows)


def as_manifest(plan: pd.DataFrame) -> pd.DataFrame:
    rows = plan.assign(
        path=[f"{m}/{i}.png" for m, i in zip(plan["method"], plan["id"])], source="fairforge-synth", domain=plan["method"]
    )
    schema = set(to_frame([]).columns) | {"pair_rule"}
    return to_frame(rows[[c for c in rows.columns if c in schema]])


def ffpp_like(n_persons: int = 200, frames: int = 4, official: bool = True, seed: int = 0) -> pd.DataFrame:
    """FF++-like frames: real videos `t`, fakes `t_s` per method, persons paired (2i, 2i+1).

    `official`: each pair gets an official split (80/10/10 over pairs, as FF++'s lists are made),
    so both persons and all four methods' fakes of the pair share it.
    """
    rng = np.random.default_rng(seed)
    gender = rng.choice(GENDERS, n_persons)
    race = rng.choice(RACES, n_persons, p=[0.1, 0.6, 0.2, 0.1])
    pair_split = split_sequence("ffpp-pairs", n_persons // 2, FRACTIONS)
    rows = []

    def add(video: str, person: int, method: str, split: str) -> None:
        (identity,), (src,) = persons("ffpp", [video])
        for f in range(frames):
            rows.append(
                {
                    "id": f"ffpp/{method}/{video}/{f:03d}",
                    "path": f"{method}/{video}/{f:03d}.png",
                    "label": 0 if method == "real" else 1,
                    "method": method,
                    "source": "ffpp",
                    "domain": method,
                    "split": split if official else None,
                    "identity": identity,
                    "src_identity": src,
                    "gender": gender[person],
                    "race": race[person],
                    "age": "unknown",
                }
            )

    for pair in range(n_persons // 2):
        t, s = 2 * pair, 2 * pair + 1
        split = pair_split[pair]
        for person in (t, s):
            add(f"{person:03d}", person, "real", split)
        for method in FF_METHODS:
            add(f"{t:03d}_{s:03d}", t, method, split)
            add(f"{s:03d}_{t:03d}", s, method, split)
    return to_frame(rows)


def shares(frame: pd.DataFrame, by: tuple[str, ...] = ("source", "label", "method")) -> pd.DataFrame:
    """Each stratum's share per split (columns train, validation, test)."""
    counts = frame.groupby([*by, "split"]).size().unstack("split", fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0)


def worst_gap(frame: pd.DataFrame, fractions: dict[str, float] = FRACTIONS) -> float:
    """The largest |share - fraction| over strata and splits, in points."""
    table = shares(frame).reindex(columns=list(fractions), fill_value=0.0)
    return float(max((table[s] - f).abs().max() for s, f in fractions.items()) * 100)
