"""A tiny Stable Diffusion pipeline (UNet 32/64 channels, 2-block VAE, 2-layer CLIP text encoder).

Saved with `save_pretrained` so `AutoPipelineForText2Image.from_pretrained(folder)` loads it the
way it loads `stable-diffusion-v1-5`; its 64x64 images take about a second on a CPU. Random weights
draw no faces: the tiny preset aligns its crops with the `template` detector.
"""

from __future__ import annotations

from pathlib import Path

from . import register_tiny
from .clip_tokenizer import VOCAB_SIZE, write_clip_tokenizer


@register_tiny("diffusion", version=1)
def build_tiny_diffusion(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=64,
        norm_num_groups=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=VOCAB_SIZE - 2,
            eos_token_id=VOCAB_SIZE - 1,
            pad_token_id=VOCAB_SIZE - 1,
            projection_dim=32,
        )
    )
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(folder / "_tokenizer_src"))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out = folder / "pipeline"
    pipe.save_pretrained(out, safe_serialization=True)
    import shutil

    shutil.rmtree(folder / "_tokenizer_src")
    return out
