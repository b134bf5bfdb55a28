"""`sbi`: self-blended images, and `sbi_target`: the transformed target a blend is paired with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairforge.config.generate import GenerateConfig

from . import Generator, register


@register
class SelfBlend(Generator):
    name = "sbi"
    order = 10
    partner = "sbi_target"

    def spec(self, cfg: GenerateConfig) -> dict[str, Any]:
        return {"sbi": cfg.sbi.model_dump(mode="json")}

    def partner_needed(self, seed: int) -> bool:
        from fairforge.generate.sbi import target_is_transformed

        return target_is_transformed(seed)

    def make(self, cfg: GenerateConfig, row: Mapping[str, Any], faces):  # type: ignore[no-untyped-def]
        from fairforge.generate.fakes import make_sbi

        return make_sbi(cfg, row, faces)


@register
class SelfBlendTarget(SelfBlend):
    name = "sbi_target"
    kind = "partner"
    fake_label = 0
    partner = None

    def partner_needed(self, seed: int) -> bool:
        return False

    def generator_id(self, cfg: GenerateConfig) -> str:
        return "sbi"

    def make(self, cfg: GenerateConfig, row: Mapping[str, Any], faces):  # type: ignore[no-untyped-def]
        from fairforge.generate.fakes import make_sbi_target

        return make_sbi_target(cfg, row, faces)
