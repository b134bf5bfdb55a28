"""Generators: one module per way of making an image, found by name in `GENERATORS`.

The plan, the job and `regenerate` ask this registry, never a method name written in an `if`, so
a new generator is one module here (or anywhere that registers one) and one YAML entry in
`generate.methods`. An unknown name is a `ConfigError` listing the registered ones.

A generator says five things (`Generator`):
- `kind`: `pristine` (made from nothing: the diffusion faces, in planned batches), `fake` (made
  from pristine faces on disk) or `partner` (a real row a fake is paired with, planned by its fake);
- `spec(cfg)`: its config section as it shapes the bytes (hashed into every id);
- `generator_id(cfg)`: the model or recipe identity recorded in the `generator` column;
- `load(cfg)`: its models, once per job, only when the plan has its rows;
- `make(cfg, row, faces)`: one image from its plan row -> (RGB uint8, the face it was made on, params).
Settings of a generator that has no section of its own in `GenerateConfig` go under
`generate.options.<name>`, validated by its `Config` model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from fairforge.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from fairforge.config.generate import GenerateConfig
    from fairforge.generate.fakes import FaceSource, PristineFace

KINDS = ("pristine", "fake", "partner")


class Generator:
    """The protocol every generator implements; instances live for one job."""

    name: ClassVar[str]
    kind: ClassVar[str] = "fake"
    #: Where its rows go in the plan (pristine faces first, then fakes by this order).
    order: ClassVar[int] = 50
    #: 1 for fakes; a pristine generator may decide per config (`label`).
    fake_label: ClassVar[int] = 1
    #: Whether its source face is another pristine face (a swap) rather than the target itself.
    pairs_faces: ClassVar[bool] = False
    #: Settings under `generate.options.<name>` (None: it takes none, or has its own section).
    Config: ClassVar[type[BaseModel] | None] = None
    #: The generator of the real rows this one's fakes may be paired with (`partner_needed`).
    partner: ClassVar[str | None] = None

    def label(self, cfg: GenerateConfig) -> int:
        return self.fake_label

    def options(self, cfg: GenerateConfig) -> BaseModel | None:
        """Its validated `generate.options.<name>` section (defaults when absent)."""
        if self.Config is None:
            return None
        return self.Config.model_validate(cfg.options.get(self.name, {}))

    def spec(self, cfg: GenerateConfig) -> dict[str, Any]:
        options = self.options(cfg)
        return {} if options is None else {self.name: options.model_dump(mode="json")}

    def generator_id(self, cfg: GenerateConfig) -> str:
        return self.name

    def load(self, cfg: GenerateConfig) -> None:
        """Load models; called once per job when the plan has rows of this generator."""

    def reads(self, row: Mapping[str, Any]) -> set[str]:
        """The pristine faces `make` reads (checked to exist before the fakes phase)."""
        return {row["src_id"]}

    def partner_needed(self, seed: int) -> bool:
        """Whether this fake's real partner is a row of its own (`partner`), planned before it."""
        return False

    def make(
        self, cfg: GenerateConfig, row: Mapping[str, Any], faces: FaceSource
    ) -> tuple[np.ndarray, PristineFace, dict[str, Any]]:
        """One image from its plan row: (RGB uint8, the face it was made on, params). Every fake and
        partner generator overrides this; a pristine one (diffusion) renders planned batches instead."""
        raise TypeError(f"generator {self.name!r} makes its images in planned batches, not one row at a time")


GENERATORS: Registry[type[Generator]] = Registry("generator", discover="fairforge.generate.methods")


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: `GENERATORS[cls.name] = cls` (a duplicate name is refused)."""
    if cls.kind not in KINDS:
        raise ValueError(f"generator {cls.name!r}: kind {cls.kind!r} is not one of {list(KINDS)}")
    return GENERATORS.register(cls.name)(cls)


def get(name: str, key: str = "generate.methods") -> type[Generator]:
    return GENERATORS.get(name, key=key)


def of_kind(*kinds: str) -> list[str]:
    return [n for n, g in GENERATORS.items() if g.kind in kinds]


def plan_order(name: str) -> int:
    gen = GENERATORS.get(name)
    return -1 if gen.kind == "pristine" else gen.order


__all__ = ["GENERATORS", "KINDS", "Generator", "get", "of_kind", "plan_order", "register"]
