"""`inswapper`: insightface's inswapper_128 face swap between two pristine faces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairforge.config.generate import GenerateConfig

from . import Generator, register


@register
class InSwapper(Generator):
    name = "inswapper"
    order = 20
    pairs_faces = True

    def __init__(self) -> None:
        self.swapper = None
        self.embeddings: dict[str, Any] = {}

    def spec(self, cfg: GenerateConfig) -> dict[str, Any]:
        return {"pairing": dict(cfg.inswapper.pairing), "recognition": cfg.inswapper.recognition}

    def generator_id(self, cfg: GenerateConfig) -> str:
        from fairforge.generate.swap import generator_id

        return generator_id(cfg)

    def load(self, cfg: GenerateConfig) -> None:
        from fairforge.generate.swap import Swapper

        self.swapper = Swapper(cfg)

    def reads(self, row: Mapping[str, Any]) -> set[str]:
        return {row["src_id"], row["dst_id"]}

    def make(self, cfg: GenerateConfig, row: Mapping[str, Any], faces):  # type: ignore[no-untyped-def]
        from fairforge.generate.fakes import make_inswapper

        if self.swapper is None:
            self.load(cfg)
        return make_inswapper(cfg, row, faces, self.swapper, self.embeddings)
