"""`diffusion`: text-to-image faces, the pristine pool (made in planned batches by the job)."""

from __future__ import annotations

from typing import Any

from fairforge.config.generate import GenerateConfig

from . import Generator, register


@register
class Diffusion(Generator):
    name = "diffusion"
    kind = "pristine"

    def label(self, cfg: GenerateConfig) -> int:
        return 1 if cfg.diffusion_label == "fake" else 0

    def spec(self, cfg: GenerateConfig) -> dict[str, Any]:
        d = cfg.diffusion
        return {"dtype": d.dtype, "scheduler": d.scheduler, "revision": d.revision, "variant": d.variant}

    def generator_id(self, cfg: GenerateConfig) -> str:
        d = cfg.diffusion
        return d.model + (f"@{d.revision}" if d.revision else "")

    def load(self, cfg: GenerateConfig) -> None:
        from fairforge.generate.diffusion import check_model

        check_model(cfg.diffusion)
