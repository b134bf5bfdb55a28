"""Backbones: any timm model by name, plus registered names (`tiny`) that resolve to one.

`create_backbone(cfg)` returns a timm model with its classifier removed (`num_classes=0`: it
returns pooled features, `model.num_features` wide). Weights come from `model.pretrained`:
- `false`: random init (the seed governs it);
- `true`: timm's default weights for the name (a download, cached by huggingface_hub);
- a hub id (`timm/efficientnet_b4.ra2_in1k`): that repository's weights for the named architecture;
- a local `.safetensors` / `.pth` file: those weights (classifier keys dropped);
and `backbone: local-dir:FOLDER` (config.json + model.safetensors, timm's Hub layout) builds the
architecture stored there, with its weights when `pretrained` is true. The tiny preset's backbone
is exactly such a folder (`fairforge.tiny.ensure("timm")`), so tests load through this same path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from fairforge.config.train import ModelConfig
from fairforge.errors import ConfigError, MissingModelError
from fairforge.registry import Registry

BackboneBuilder = Callable[[ModelConfig], nn.Module]

#: Backbone names that are not timm names (each usually resolves to one); any timm name works besides.
BACKBONES: Registry[BackboneBuilder] = Registry("backbone")
register_backbone = BACKBONES.register


@BACKBONES.register("tiny")
def tiny_backbone(cfg: ModelConfig) -> nn.Module:
    """The tiny preset's random-weight timm backbone, saved once in timm's local-dir format."""
    from fairforge.tiny import ensure

    return timm_backbone("local-dir:" + str(ensure("timm")), pretrained=True, drop_rate=cfg.drop_rate)


def create_backbone(cfg: ModelConfig) -> nn.Module:
    """The feature extractor named by `model.backbone` (a registered name or any timm name)."""
    if cfg.backbone in BACKBONES:
        return BACKBONES.get(cfg.backbone)(cfg)
    return timm_backbone(cfg.backbone, cfg.pretrained, cfg.drop_rate)


def timm_backbone(name: str, pretrained: bool | str, drop_rate: float = 0.0) -> nn.Module:
    import timm

    kwargs: dict[str, Any] = {"num_classes": 0, "drop_rate": drop_rate}
    if isinstance(pretrained, str):
        if pretrained.endswith((".safetensors", ".pth", ".bin")) or Path(pretrained).exists():
            file = Path(pretrained).expanduser()
            if not file.is_file():
                raise MissingModelError(f"model.pretrained: weights file {file} does not exist")
            kwargs["pretrained_cfg_overlay"] = {"file": str(file)}
        else:
            kwargs["pretrained_cfg_overlay"] = {"hf_hub_id": pretrained.removeprefix("hf-hub:")}
        pretrained = True
    if name.startswith("local-dir:") and not Path(name.removeprefix("local-dir:")).is_dir():
        raise MissingModelError(f"model.backbone: folder {name.removeprefix('local-dir:')} does not exist")
    if ":" not in name and not timm.is_model(name):
        raise ConfigError(
            f"model.backbone: {name!r} is neither a registered backbone {BACKBONES.names()} nor a timm model"
        )
    try:
        return timm.create_model(name, pretrained=bool(pretrained), **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if pretrained:
            raise MissingModelError(
                f"model.pretrained: could not load weights for {name!r} ({type(exc).__name__}: {exc}); offline, give a "
                "local .safetensors file or a local-dir: folder"
            ) from exc
        raise


__all__ = ["BACKBONES", "BackboneBuilder", "create_backbone", "register_backbone", "timm_backbone"]
