"""Remake one image from its manifest row: the proof that the provenance is complete.

`regenerate(DIR, id, cfg)` reads the row (and, for a diffusion face, the plan rows of the pipeline
call it came from: `gen_params.batch_ids`), rebuilds the image with the row's own generator, seed,
prompt, steps, guidance and size, and returns the encoded bytes; equal bytes mean the same software
and hardware reproduce the set. The config supplies only what a row does not pin: where the model
files are and which detector/alignment code to run (and these must match the row's `render`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairforge.config.generate import GenerateConfig
from fairforge.errors import ConfigError, FairforgeError
from fairforge.taxonomy import Taxonomy

from . import methods
from .align import Aligner
from .faces import build_detector
from .fakes import FaceSource
from .output import encode, read_rows
from .plan import load_plan, manifest_pool
from .pristine import Renderer, generate_round, round_seeds
from .rows import render_params


def _diffusion_config(cfg: GenerateConfig, row: dict[str, Any], params: dict[str, Any]) -> GenerateConfig:
    model, _, revision = str(row["generator"]).partition("@")
    width, height = params["size"]
    diffusion = cfg.diffusion.model_copy(
        update={
            "model": model,
            "revision": revision or None,
            "steps": int(row["steps"]),
            "guidance": float(row["guidance"]),
            "width": int(width),
            "height": int(height),
            "dtype": params["dtype"],
            "scheduler": params["scheduler"],
        }
    )
    return cfg.model_copy(update={"diffusion": diffusion})


def regenerate(
    out: str | Path, id_: str, cfg: GenerateConfig, seed: int = 0, taxonomy: Taxonomy | None = None
) -> bytes:
    """The encoded bytes of image `id_` of folder `out`, made again from its provenance."""
    out = Path(out)
    rows = read_rows(out)
    match = rows[rows["id"] == id_]
    if match.empty:
        raise FairforgeError(f"{out}: no manifest row with id {id_!r}")
    row = match.iloc[0].to_dict()
    params = json.loads(row["gen_params"])
    if params.get("render") != render_params(cfg):
        raise ConfigError(
            f"generate.detector/align: the config's detector/alignment differ from the ones that made {id_} "
            f"(row: {params.get('render')})"
        )
    aligner = Aligner.from_config(cfg.align)
    renderer = Renderer(cfg, build_detector(cfg.detector, aligner), aligner)
    if methods.get(row["method"]).kind == "pristine":
        from .diffusion import torch_threads

        with torch_threads(cfg.num_threads):
            return _diffusion(out, row, params, cfg, renderer, seed)
    plan = load_plan(out)
    plan_row = plan[plan["id"] == id_].iloc[0].to_dict()
    if cfg.pool.source == "manifest":
        _, frame = manifest_pool(str(cfg.pool.manifest), taxonomy or Taxonomy())
        source = FaceSource(out, frame, renderer, real=True)
    else:
        source = FaceSource(out, rows, renderer, real=False)
    generator = methods.get(row["method"], key=f"{out}: row {id_} method")()
    if generator.generator_id(cfg) != row["generator"]:
        raise ConfigError(
            f"generate: the config's {row['method']} is not the generator that made {id_} ({row['generator']})"
        )
    image, _, _ = generator.make(cfg, plan_row, source)
    return encode(image, cfg.align)


def _diffusion(
    out: Path, row: dict[str, Any], params: dict[str, Any], cfg: GenerateConfig, renderer: Renderer, seed: int
) -> bytes:
    from .diffusion import load_pipeline, to_uint8

    cfg = _diffusion_config(cfg, row, params)
    plan = load_plan(out).set_index("id", drop=False)
    members = [plan.loc[i].to_dict() for i in params["batch_ids"]]
    pipe = load_pipeline(cfg.diffusion, "cuda" if _cuda() else "cpu")
    images = generate_round(pipe, cfg, members, round_seeds(members, seed, int(params["round"])))
    pixels = to_uint8(images[params["batch_ids"].index(row["id"])])
    face = renderer.find(pixels)
    if face is None:
        raise FairforgeError(f"{row['id']}: the regenerated image has no face (different software or hardware?)")
    crop, _ = renderer.crop(pixels, face)
    return encode(crop, cfg.align)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
