"""The demographic taxonomy every stage shares.

Why one module: the generator's prompt grid, the attribute classifier's verdicts, the importers'
group codes and the evaluator's groups must all name a group the same way, or a fairness metric
silently compares different people. The default is the published benchmarks' 8 intersectional
groups (gender {male, female} x race {Asian, White, Black, Others}), with FairFace's finer 7 races
and 9 age bins mapped onto it. How it is configured and reaches every stage: docs/taxonomy.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "unknown"

GENDERS: tuple[str, ...] = ("male", "female")
RACES: tuple[str, ...] = ("Asian", "White", "Black", "Others")
FAIRFACE_RACES: tuple[str, ...] = (
    "White",
    "Black",
    "Latino_Hispanic",
    "East Asian",
    "Southeast Asian",
    "Indian",
    "Middle Eastern",
)
FAIRFACE_GENDERS: tuple[str, ...] = ("Male", "Female")
AGE_BINS: tuple[str, ...] = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")

#: FairFace's 7 races onto the benchmark's 4 (Asian = East + Southeast Asian; Others = the rest).
FAIRFACE_TO_RACE: dict[str, str] = {
    "White": "White",
    "Black": "Black",
    "East Asian": "Asian",
    "Southeast Asian": "Asian",
    "Latino_Hispanic": "Others",
    "Indian": "Others",
    "Middle Eastern": "Others",
}
FAIRFACE_TO_GENDER: dict[str, str] = {"Male": "male", "Female": "female"}


def _norm(name: str) -> str:
    """Compare label names loosely: case, spaces, hyphens and underscores do not matter."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass(frozen=True)
class Taxonomy:
    """Attribute vocabularies and the maps from finer vocabularies onto them.

    `race_map` / `gender_map` send a finer label (FairFace's, a classifier's `id2label`) to the
    taxonomy's own; names are matched loosely (`east_asian` == `East Asian`) so that a classifier is
    mapped by name, never by index.
    """

    genders: tuple[str, ...] = GENDERS
    races: tuple[str, ...] = RACES
    ages: tuple[str, ...] = AGE_BINS
    race_map: Mapping[str, str] = field(default_factory=lambda: dict(FAIRFACE_TO_RACE))
    gender_map: Mapping[str, str] = field(default_factory=lambda: dict(FAIRFACE_TO_GENDER))

    def __post_init__(self) -> None:
        for attr in ("genders", "races", "ages"):
            values = getattr(self, attr)
            if len(values) == 0 or len(set(values)) != len(values):
                raise ValueError(f"taxonomy.{attr}: expected a non-empty list of unique names, got {values!r}")
            if UNKNOWN in values:
                raise ValueError(f"taxonomy.{attr}: {UNKNOWN!r} is reserved")
        for key, value in self.race_map.items():
            if value not in self.races:
                raise ValueError(f"taxonomy.race_map[{key!r}]: {value!r} is not one of races {list(self.races)}")
        for key, value in self.gender_map.items():
            if value not in self.genders:
                raise ValueError(f"taxonomy.gender_map[{key!r}]: {value!r} is not one of genders {list(self.genders)}")

    # ---- groups ---------------------------------------------------------------------------
    @property
    def groups(self) -> tuple[str, ...]:
        """Intersectional gender-race groups, gender-major: `male-Asian, male-White, ...`."""
        return tuple(group_name(g, r) for g in self.genders for r in self.races)

    def group_of(self, gender: str, race: str) -> str:
        return group_name(gender, race)

    def group_index(self, gender: str, race: str) -> int:
        """Index of the intersectional group, or -1 when either attribute is unknown."""
        if gender not in self.genders or race not in self.races:
            return -1
        return self.genders.index(gender) * len(self.races) + self.races.index(race)

    def cells(self, with_age: bool = True) -> list[tuple[str, str, str]]:
        """Generation cells gender x race x age (age `unknown` when `with_age` is off)."""
        ages = self.ages if with_age else (UNKNOWN,)
        return [(g, r, a) for g in self.genders for r in self.races for a in ages]

    # ---- validation and mapping ---------------------------------------------------------
    def allowed(self, attribute: str) -> tuple[str, ...]:
        """The values a manifest may hold for `attribute` (`unknown` always allowed)."""
        vocab = {"gender": self.genders, "race": self.races, "age": self.ages}
        if attribute not in vocab:
            raise KeyError(f"unknown attribute {attribute!r}; expected one of {list(vocab)}")
        return (*vocab[attribute], UNKNOWN)

    def map_label(self, attribute: str, label: str) -> str:
        """Map a classifier or dataset label onto the taxonomy by name; `unknown` if unmappable."""
        own = {"gender": self.genders, "race": self.races, "age": self.ages}[attribute]
        by_norm = {_norm(v): v for v in own}
        if attribute == "race":
            by_norm.update({_norm(k): v for k, v in self.race_map.items()})
        elif attribute == "gender":
            by_norm.update({_norm(k): v for k, v in self.gender_map.items()})
            by_norm.update({"man": "male", "woman": "female", "m": "male", "f": "female"})
            by_norm = {k: v for k, v in by_norm.items() if v in own}
        elif attribute == "age":
            by_norm.update({_norm(v.replace("-", "_")): v for v in own})
            by_norm.update({_norm("more than 70"): own[-1]} if own == AGE_BINS else {})
        return by_norm.get(_norm(label), UNKNOWN)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Taxonomy:
        """Build from a config mapping; missing keys take the defaults."""
        if not cfg:
            return cls()
        known = {"genders", "races", "ages", "race_map", "gender_map"}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"taxonomy: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key in ("genders", "races", "ages"):
            if key in cfg:
                kwargs[key] = tuple(cfg[key])
        for key in ("race_map", "gender_map"):
            if key in cfg:
                kwargs[key] = dict(cfg[key])
        return cls(**kwargs)

    def to_config(self) -> dict[str, Any]:
        return {
            "genders": list(self.genders),
            "races": list(self.races),
            "ages": list(self.ages),
            "race_map": dict(self.race_map),
            "gender_map": dict(self.gender_map),
        }


def group_name(gender: str, race: str) -> str:
    """The intersectional key used everywhere (reports, manifests, configs): `"{gender}-{race}"`."""
    return f"{gender}-{race}"


DEFAULT_TAXONOMY = Taxonomy()

#: PG-FDD / DAW-FDD CSV group codes (docs/manifest.md, "Importers"): 8 groups for FF++/DFDC ...
PGFDD_GROUPS_8: tuple[tuple[str, str], ...] = (
    ("male", "Asian"),
    ("male", "White"),
    ("male", "Black"),
    ("male", "Others"),
    ("female", "Asian"),
    ("female", "White"),
    ("female", "Black"),
    ("female", "Others"),
)
#: ... and 6 for DFD/Celeb-DF, which have no Asian group.
PGFDD_GROUPS_6: tuple[tuple[str, str], ...] = (
    ("male", "White"),
    ("male", "Black"),
    ("male", "Others"),
    ("female", "White"),
    ("female", "Black"),
    ("female", "Others"),
)
