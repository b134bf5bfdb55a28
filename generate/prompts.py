"""Prompts per cell with sampled variety, and their checks against the taxonomy.

Why sampled variety: a grid of identical prompts per cell gives near-identical faces, and a detector
trained on them learns the prompt, not the forgery. Each image draws its age words, race words
(FairFace's finer groups), lighting, expression, background, camera and head pose from the
config's lists, with a generator seeded by the image's own plan key, so the prompt is part of the
plan and regenerates exactly.
"""

from __future__ import annotations

import re

import numpy as np

from fairforge.config.generate import PromptConfig
from fairforge.errors import ConfigError
from fairforge.taxonomy import UNKNOWN, Taxonomy

Cell = tuple[str, str, str]
_VARIETY = ("lighting", "expression", "background", "camera", "head_pose")


def cell_key(cell: Cell) -> str:
    return "-".join(cell)


def template_for(cfg: PromptConfig, cell: Cell) -> str:
    """The most specific template: `gender-race-age`, then `gender-race`, then the default."""
    gender, race, age = cell
    return cfg.cell_templates.get(cell_key(cell)) or cfg.cell_templates.get(f"{gender}-{race}") or cfg.template


def check_prompts(cfg: PromptConfig, taxonomy: Taxonomy, cells: list[Cell], key: str = "generate.prompt") -> None:
    """Every cell has words for its gender, race and age, and every cell template names a known cell."""
    groups = {f"{g}-{r}" for g in taxonomy.genders for r in taxonomy.races}
    cell_keys = {cell_key(c) for c in taxonomy.cells()}
    for name in cfg.cell_templates:
        if name not in groups and name not in cell_keys:
            raise ConfigError(
                f"{key}.cell_templates[{name!r}]: not a group or cell of the taxonomy (e.g. 'male-White')"
            )
    for gender, race, age in cells:
        words = cfg.gender_words.get(gender)
        if not words or not (words.get(age) or words.get("default")):
            raise ConfigError(f"{key}.gender_words[{gender!r}]: no words for age {age!r} and no 'default'")
        if not cfg.race_words.get(race):
            raise ConfigError(f"{key}.race_words[{race!r}]: missing; every race of the taxonomy needs words")
        if age != UNKNOWN and not cfg.age_words.get(age):
            raise ConfigError(f"{key}.age_words[{age!r}]: missing; every age bin generated needs words")


def sample_prompt(cfg: PromptConfig, cell: Cell, seed: int) -> str:
    """The prompt of one image: its cell's template filled with words drawn by `seed`."""
    gender, race, age = cell
    rng = np.random.default_rng(seed)

    def pick(options: list[str]) -> str:
        return options[int(rng.integers(len(options)))] if options else ""

    gender_options = cfg.gender_words[gender].get(age) or cfg.gender_words[gender]["default"]
    values = {
        "gender": gender,
        "race": race,
        "age": "" if age == UNKNOWN else age,
        "gender_words": pick(gender_options),
        "race_words": pick(cfg.race_words[race]),
        "age_words": "" if age == UNKNOWN else pick(cfg.age_words[age]),
    }
    values.update({name: pick(getattr(cfg, name)) for name in _VARIETY})
    text = template_for(cfg, cell).format(**values)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s+,", ",", text).strip()
