"""Training augmentations on PIL images, each driven by a per-sample seed.

Why per-sample seeds instead of worker RNGs: the sampler hands every sample its own seed, so the
same (epoch, position) gets the same augmentation whatever the number of workers or processes, and
a run resumed mid-epoch sees exactly the images the uninterrupted run saw.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from fairforge.config.train import AugmentConfig


def is_identity(cfg: AugmentConfig) -> bool:
    return cfg.hflip == 0 and cfg.color_jitter == 0 and cfg.jpeg_p == 0 and cfg.blur_p == 0


def augment(image: Image.Image, cfg: AugmentConfig, seed: int) -> Image.Image:
    """Flip, colour jitter, JPEG re-encode, blur: each with its configured probability/strength."""
    rng = np.random.default_rng(seed)
    if rng.random() < cfg.hflip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if cfg.color_jitter > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            factor = 1.0 + rng.uniform(-cfg.color_jitter, cfg.color_jitter)
            image = enhancer(image).enhance(factor)
    if rng.random() < cfg.jpeg_p:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    if rng.random() < cfg.blur_p:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(*cfg.blur_sigma))))
    return image


__all__ = ["augment", "is_identity"]
