"""A tiny timm backbone saved in timm's Hugging Face layout (config.json + model.safetensors).

`timm.create_model("local-dir:" + folder)` loads it through the same code as
`timm.create_model("hf-hub:timm/efficientnet_b4.ra2_in1k")`: the architecture and its
`pretrained_cfg` come from config.json, the weights from safetensors.
"""

from __future__ import annotations

from pathlib import Path

from . import register_tiny

TINY_TIMM_ARCH = "test_efficientnet"


@register_tiny("timm", version=1)
def build_tiny_timm(folder: Path) -> Path:
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(TINY_TIMM_ARCH, pretrained=False, num_classes=2)
    out = folder / "backbone"
    save_for_hf(model, out, safe_serialization=True)
    return out
