"""A tiny attribute classifier in the FairFace checkpoint format.

FairFace ships `res34_fair_align_multi_7_20190809.pt`: a torchvision ResNet-34 state dict whose
`fc` has 18 logits (race 0-6, gender 7-8, age 9-17). The tiny one is a torchvision ResNet-18 state
dict with the same 18-logit head, saved with `torch.save` like the original and read back with
`torch.load(weights_only=True)` by the balance stage's FairFace loader (config: `arch: resnet18`).
"""

from __future__ import annotations

from pathlib import Path

from . import register_tiny

FAIRFACE_NUM_LOGITS = 18
TINY_FAIRFACE_ARCH = "resnet18"


@register_tiny("fairface", version=1)
def build_tiny_fairface(folder: Path) -> Path:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=FAIRFACE_NUM_LOGITS)
    out = folder / "res18_fair_align_multi_7_tiny.pt"
    torch.save(model.state_dict(), out)
    return out
