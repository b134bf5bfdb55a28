"""Every tiny model builds, saves, and reloads offline through the loader real weights take."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fairforge import tiny
from fairforge.tiny.clip_tokenizer import VOCAB_SIZE, write_clip_tokenizer


def test_clip_tokenizer_is_the_real_clip_vocabulary(tmp_path):
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer(tmp_path / "tok")
    vocab = json.loads((folder / "vocab.json").read_text())
    assert len(vocab) == VOCAB_SIZE == 49408
    tok = CLIPTokenizer.from_pretrained(folder)
    ids = tok("a photo of a cat").input_ids
    # OpenAI CLIP ids: <|startoftext|>=49406, a=320, photo=1125, of=539, cat=2368, <|endoftext|>=49407
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_tiny_diffusion_loads_through_autopipeline(tiny_cache):
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(tiny.ensure("diffusion"))
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(0)
    image = pipe("a portrait photo", num_inference_steps=2, generator=gen, output_type="np").images[0]
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()


def test_tiny_timm_loads_through_local_dir(tiny_cache):
    import timm

    model = timm.create_model("local-dir:" + str(tiny.ensure("timm")), num_classes=0)
    features = model(torch.zeros(2, 3, 64, 64))
    assert features.shape[0] == 2 and features.ndim == 2


def test_tiny_fairface_is_a_weights_only_state_dict(tiny_cache):
    import torchvision

    state = torch.load(tiny.ensure("fairface"), map_location="cpu", weights_only=True)
    model = torchvision.models.resnet18(weights=None, num_classes=18)
    model.load_state_dict(state)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 18)


def test_tiny_onnx_models_route_through_insightface_model_zoo(tiny_cache):
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.inswapper import INSwapper

    swapper = get_model(str(tiny.ensure("inswapper")), providers=["CPUExecutionProvider"])
    assert isinstance(swapper, INSwapper)
    assert swapper.emap.shape == (512, 512)
    out = swapper.forward(np.zeros((1, 3, 128, 128), np.float32), np.ones((1, 512), np.float32))
    assert out.shape == (1, 3, 128, 128) and (out >= 0).all() and (out <= 1).all()

    recognizer = get_model(str(tiny.ensure("arcface")), providers=["CPUExecutionProvider"])
    assert isinstance(recognizer, ArcFaceONNX)
    emb = recognizer.get_feat([np.zeros((112, 112, 3), np.uint8)])
    assert emb.shape == (1, 512)


def test_unknown_tiny_model_is_a_clear_error():
    with pytest.raises(Exception, match="unknown tiny model 'nope'"):
        tiny.ensure("nope")


def test_ensure_is_cached(tiny_cache):
    first = tiny.ensure("arcface")
    assert tiny.ensure("arcface") == first
    assert first.is_relative_to(tiny_cache)
