"""The diffusion stage's loading options on the tiny pipeline: channels-last memory, variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairforge.config import validate
from fairforge.config.generate import DiffusionConfig
from fairforge.generate.diffusion import generate_batch, load_pipeline


def _cfg(**extra) -> DiffusionConfig:
    return validate(DiffusionConfig, {"model": "tiny:diffusion", "steps": 2, "batch_size": 2, **extra})


def test_channels_last_changes_the_memory_layout_not_the_images(tiny_cache):
    plain = load_pipeline(_cfg(), "cpu")
    fast = load_pipeline(_cfg(channels_last=True), "cpu")
    convs = [m.weight for m in fast.unet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    vae_convs = [m.weight for m in fast.vae.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in vae_convs)
    assert not plain.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    args = (["a portrait photo", "a face"], ["blurry", "blurry"], [3, 4])
    np.testing.assert_allclose(generate_batch(fast, _cfg(), *args), generate_batch(plain, _cfg(), *args), atol=1e-4)


def test_a_variant_the_checkpoint_lacks_fails_at_load(tiny_cache):
    with pytest.raises(Exception, match="fp16"):
        load_pipeline(_cfg(variant="fp16"), "cpu")
