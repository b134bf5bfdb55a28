"""The PG-FDD network (Lin et al., CVPR 2024, "Preserving Fairness Generalization in Deepfake Detection").

Three encoders of the same backbone read the image: forgery, content and demographic. Two 1x1-conv
blocks split the forgery features into domain-specific and domain-agnostic ("shared") parts, a third
turns the demographic encoder's features into demographic features, and AdaIN re-styles the
demographic features with the agnostic ones' statistics; the fused head on that is the detector used
at inference. A conditional decoder, used only in training, rebuilds images from forgery features
and AdaIN(demographic, content) features, itself and crossed between the two halves of the batch, so
the split has to keep the information apart. The losses live in `methods/pg_fdd.py`; this module is
only the network, dict in, dict out.

Relation to the published code (Purdue-M2/Fairness-Generalization), kept deliberately:
* each encoder projects the backbone's pre-activation features with a 1x1 conv + BN + ReLU to
  `feat_dim` channels (their Xception `adjust_channel` mode on bn4's output, 2048 -> 512), which
  makes any timm backbone fit;
* the blocks are conv1x1 -> LeakyReLU -> conv1x1 -> LeakyReLU -> conv1x1 to feat_dim/2; heads are
  avg-pool -> Linear(feat_dim/2, feat_dim) -> LeakyReLU -> Linear -> dropout 0.2 on the logits;
* the decoder: three stages of AdaIN(x, c) -> x2 bilinear upsample -> dropout 0.3 -> two 3x3 convs,
  the same stage weights applied to the forgery stream c, channels halving from feat_dim; a 1x1 conv
  to RGB, bilinear resize to the input size (the published x4 for stride-32 backbones), tanh.
Changed: the last upsample goes to the input's size for any backbone stride, and the "cross" pairs
are sample i with sample i + B/2 (mod B), which on the real-half/fake-half batches the method asks
the sampler for (reals first, as theirs) is exactly their pairing, and also works for odd batches.
AdaIN lives here because only this network uses it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalization: `content` normalized per sample and channel, given `style`'s stats.

    out = (x - mean_x) / sqrt(var_x + eps) * sqrt(var_y + eps) + mean_y over the spatial positions
    (unbiased variance, as the published PG-FDD and AdaIN code), so the output's per-channel mean is
    the style's and its standard deviation the style's up to eps.
    """
    if content.shape[:2] != style.shape[:2] or content.dim() < 3:
        raise ValueError(
            f"adain needs [N, C, ...] tensors with equal N, C; got {tuple(content.shape)} and {tuple(style.shape)}"
        )
    x = content.flatten(2)
    y = style.flatten(2)
    if x.shape[-1] < 2 or y.shape[-1] < 2:
        raise ValueError(
            f"adain needs at least 2 spatial positions, got {tuple(content.shape)} and {tuple(style.shape)}"
        )
    shape = content.shape[:2] + (1,) * (content.dim() - 2)
    x_mean, x_std = x.mean(-1).view(shape), (x.var(-1) + eps).sqrt().view(shape)
    y_mean, y_std = y.mean(-1).view(shape), (y.var(-1) + eps).sqrt().view(shape)
    return (content - x_mean) / x_std * y_std + y_mean


#: timm architecture -> its last activation inside `forward_features`, removed by `Encoder`
FINAL_ACTIVATION = {"Xception": "act4", "XceptionAligned": "act", "EfficientNet": "bn2.act"}


def strip_final_activation(backbone: nn.Module) -> bool:
    """Replace the activation that ends `backbone.forward_features` with the identity; False if none is known.

    The authors' encoders project the pre-activation features (Xception's bn4 output) with a
    1x1 conv + BN + ReLU; timm's `forward_features` applies the activation first (`act4`), which
    would put two ReLUs in a row and zero every negative feature before the projection.
    """
    path = FINAL_ACTIVATION.get(type(backbone).__name__)
    if path is None:
        return False
    parent_path, _, name = path.rpartition(".")
    parent = backbone.get_submodule(parent_path) if parent_path else backbone
    setattr(parent, name, nn.Identity())
    return True


class _Adjust(nn.Module):
    """Encoder output -> feat_dim channels (the published `adjust_channel`)."""

    def __init__(self, in_channels: int, feat_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channels, feat_dim, 1), nn.BatchNorm2d(feat_dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Encoder(nn.Module):
    """A backbone's spatial pre-activation feature map projected to `feat_dim` channels.

    The backbone's final activation is removed where `FINAL_ACTIVATION` knows it (Xception, aligned
    Xception, EfficientNet); backbones whose features end in a norm (ConvNeXt, ViT) are already
    pre-activation; others (ResNet: the ReLU after the last residual sum) keep theirs.
    Transformers' token sequences are turned back into a grid (prefix tokens dropped), so ViTs work too.
    """

    def __init__(self, backbone: nn.Module, feat_dim: int) -> None:
        super().__init__()
        strip_final_activation(backbone)
        self.backbone = backbone
        self.adjust = _Adjust(int(backbone.num_features), feat_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.backbone.forward_features(image)
        if x.dim() == 3:
            x = x[:, int(getattr(self.backbone, "num_prefix_tokens", 0)) :]
            side = int(round(x.shape[1] ** 0.5))
            if side * side != x.shape[1]:
                raise ValueError(f"pg_fdd: cannot arrange {x.shape[1]} backbone tokens into a square grid")
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)
        elif x.dim() == 4 and getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
            x = x.permute(0, 3, 1, 2)
        return self.adjust(x)


class Block1x1(nn.Module):
    """Three 1x1 convolutions: the specific / agnostic / demographic feature splitters."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Head(nn.Module):
    """Pooled features -> logits; returns the pooled features too (the contrastive loss uses them)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LeakyReLU(inplace=True), nn.Linear(hidden, out_features)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = x.mean(dim=(2, 3))
        return self.dropout(self.mlp(pooled)), pooled


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class ConditionalDecoder(nn.Module):
    """Rebuilds an image from content-style features `x` conditioned on forgery features `c`."""

    def __init__(self, feat_dim: int, stages: int = 3, dropout: float = 0.3) -> None:
        super().__init__()
        widths = [feat_dim // 2**i for i in range(stages + 1)]
        if widths[-1] < 1:
            raise ValueError(f"pg_fdd: feat_dim {feat_dim} is too small for {stages} decoder stages")
        self.stages = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(stages))
        self.dropout = nn.Dropout(dropout)
        self.to_rgb = nn.Conv2d(widths[-1], 3, 1)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True))

    def forward(self, c: torch.Tensor, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            x = stage(self._up(adain(x, c)))
            if i + 1 < len(self.stages):
                c = stage(self._up(c))
        x = F.interpolate(self.to_rgb(x), size=size, mode="bilinear", align_corners=True)
        return torch.tanh(x)


class PGFDDNet(nn.Module):
    """Forgery / content / demographic encoders, the feature split, four heads and the training decoder.

    `make_backbone()` returns a fresh backbone (a timm model with `forward_features` and
    `num_features`) each call: the three encoders do not share weights.
    """

    def __init__(
        self,
        make_backbone: Callable[[], nn.Module],
        num_specific: int,
        num_groups: int,
        feat_dim: int = 512,
        head_dropout: float = 0.2,
        decoder_dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if feat_dim % 16:
            raise ValueError(f"pg_fdd.feat_dim must be a multiple of 16, got {feat_dim}")
        half = feat_dim // 2
        self.encoder_forgery = Encoder(make_backbone(), feat_dim)
        self.encoder_content = Encoder(make_backbone(), feat_dim)
        self.encoder_demographic = Encoder(make_backbone(), feat_dim)
        self.block_specific = Block1x1(feat_dim, half)
        self.block_shared = Block1x1(feat_dim, half)
        self.block_demographic = Block1x1(feat_dim, half)
        self.head_specific = Head(half, feat_dim, num_specific, head_dropout)
        self.head_shared = Head(half, feat_dim, 2, head_dropout)
        self.head_demographic = Head(half, feat_dim, num_groups, head_dropout)
        self.head_fused = Head(half, feat_dim, 2, head_dropout)
        self.decoder = ConditionalDecoder(feat_dim, dropout=decoder_dropout)

    def detect(self, image: torch.Tensor) -> torch.Tensor:
        """Inference path: fused real/fake logits from the forgery and demographic encoders only."""
        shared = self.block_shared(self.encoder_forgery(image))
        demographic = self.block_demographic(self.encoder_demographic(image))
        return self.head_fused(adain(demographic, shared))[0]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training forward: every head, the pooled features and the four reconstructions."""
        image = batch["image"]
        forgery = self.encoder_forgery(image)
        content = self.encoder_content(image)
        demographic_raw = self.encoder_demographic(image)
        specific = self.block_specific(forgery)
        shared = self.block_shared(forgery)
        demographic = self.block_demographic(demographic_raw)

        out: dict[str, torch.Tensor] = {}
        out["specific"], out["feat_specific"] = self.head_specific(specific)
        out["shared"], out["feat_shared"] = self.head_shared(shared)
        out["demographic"], _ = self.head_demographic(demographic)
        out["fused"], _ = self.head_fused(adain(demographic, shared))

        # decoder: forgery code of one image + content/demographic code of another -> the latter image
        forgery_code = torch.cat([specific, shared], dim=1)
        style_code = adain(demographic_raw, content)
        partner = torch.roll(torch.arange(image.shape[0], device=image.device), shifts=image.shape[0] // 2)
        size = (image.shape[-2], image.shape[-1])
        out["recon_self"] = self.decoder(forgery_code, style_code, size)
        out["recon_cross"] = self.decoder(forgery_code[partner], style_code, size)
        return out
