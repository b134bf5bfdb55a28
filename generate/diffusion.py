"""The text-to-image pipeline: loading, one batched call, and the black/NaN check.

Loading goes through `AutoPipelineForText2Image.from_pretrained` for a hub id, a local folder or the
tiny pipeline alike. Choices that matter for a training set:
- `add_watermarker=False` where the pipeline takes it (SDXL's invisible watermark would be a label
  shortcut: every synthetic face would carry it), and any `watermark` left on the pipeline is an
  error;
- one `torch.Generator` per image, on the CPU, so an image's noise depends on its seed only, not on
  its batch, device or rank;
- SDPA is diffusers' default attention on torch 2 (`AttnProcessor2_0`); `compile` wraps the denoiser
  in `torch.compile` and `channels_last` stores the UNet and VAE channels-last (GPU options);
- `variant: fp16` downloads a checkpoint's half-precision weight files where it ships them;
- fp16 on CUDA by default (bf16 by config), fp32 on CPU.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence

import numpy as np

from fairforge.config.generate import DiffusionConfig
from fairforge.errors import ConfigError, FairforgeError, MissingModelError

from .models import resolve_pretrained


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Pin torch's CPU threads for a block (CPU bytes depend on the count), then restore them."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def torch_dtype(name: str, device: str):  # type: ignore[no-untyped-def]
    import torch

    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def pipeline_class(source: str, revision: str | None):  # type: ignore[no-untyped-def]
    """The class `AutoPipelineForText2Image` would pick, to know its constructor arguments."""
    import diffusers
    from diffusers import AutoPipelineForText2Image
    from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING

    name = AutoPipelineForText2Image.load_config(source, revision=revision)["_class_name"]
    for cls in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values():
        if cls.__name__ == name:
            return cls
    return getattr(diffusers, name, None)


def _dtype_keyword() -> str:
    """diffusers renamed `torch_dtype` to `dtype`; use the one this version takes without a warning."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def check_model(cfg: DiffusionConfig) -> None:
    """Before any work: the model's `model_index.json` is readable (local folder, tiny, or hub cache)."""
    try:
        pipeline_class(resolve_pretrained(cfg.model), cfg.revision)
    except (OSError, ValueError) as exc:
        raise MissingModelError(f"generate.diffusion.model: cannot load {cfg.model!r} ({exc})") from None


def load_pipeline(cfg: DiffusionConfig, device: str):  # type: ignore[no-untyped-def]
    """The pipeline on `device`, watermark off, progress bars off, scheduler swapped when asked."""
    import diffusers
    from diffusers import AutoPipelineForText2Image

    source = resolve_pretrained(cfg.model)
    kwargs = dict(cfg.load_kwargs)
    kwargs[_dtype_keyword()] = torch_dtype(cfg.dtype, device)
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    if cfg.variant:
        kwargs["variant"] = cfg.variant
    check_model(cfg)
    cls = pipeline_class(source, cfg.revision)
    if cls is not None and "add_watermarker" in inspect.signature(cls.__init__).parameters:
        kwargs["add_watermarker"] = False
    pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    if getattr(pipe, "watermark", None) is not None:
        raise FairforgeError(f"generate.diffusion.model: {type(pipe).__name__} still watermarks its images")
    if cfg.scheduler:
        scheduler_cls = getattr(diffusers, cfg.scheduler, None)
        if scheduler_cls is None or not hasattr(scheduler_cls, "from_config"):
            raise ConfigError(f"generate.diffusion.scheduler: {cfg.scheduler!r} is not a diffusers scheduler class")
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return apply_speedups(pipe, cfg)


def apply_speedups(pipe, cfg: DiffusionConfig):  # type: ignore[no-untyped-def]
    """The config's speed options on a loaded pipeline: channels-last memory, `torch.compile`.

    Channels-last suits the convolutions of a UNet and a VAE on tensor cores; the compiled module
    is the denoiser, which runs `steps` times per batch (the VAE decodes once).
    """
    import torch

    denoisers = [name for name in ("unet", "transformer") if getattr(pipe, name, None) is not None]
    if cfg.channels_last:
        for name in [*denoisers, "vae"]:
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module):
                module.to(memory_format=torch.channels_last)
    if cfg.compile:
        for name in denoisers:
            setattr(pipe, name, torch.compile(getattr(pipe, name), mode=cfg.compile_mode))
    return pipe


def generate_batch(
    pipe, cfg: DiffusionConfig, prompts: Sequence[str], negatives: Sequence[str], seeds: Sequence[int]
) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Float images (n, h, w, 3) in [0, 1], NaN where the model overflowed; image i depends on seeds[i]."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    with torch.inference_mode():
        out = pipe(
            prompt=list(prompts),
            negative_prompt=list(negatives),
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance,
            height=cfg.height,
            width=cfg.width,
            generator=generators,
            output_type="np",
        )
    return np.asarray(out.images, dtype=np.float32)


def bad_image(image: np.ndarray, black_threshold: float) -> str | None:
    """'nan' (fp16 VAE overflow) or 'black' (safety checker, blank output), else None."""
    if not np.isfinite(image).all():
        return "nan"
    if float(image.max()) <= black_threshold:
        return "black"
    return None


def to_uint8(image: np.ndarray) -> np.ndarray:
    """diffusers' own float -> uint8 rounding (`numpy_to_pil`)."""
    return (image * 255).round().astype(np.uint8)
