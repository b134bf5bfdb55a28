"""The multi-task detector: a backbone, a real/fake head and optional demographic heads.

Dict in, dict out (DeepfakeBench's convention): `forward(batch)` reads `batch["image"]` and
returns `{"features", "logits", <head>: ...}`; `losses(batch, out)` returns one named loss per
head plus `"overall"`, the weighted sum that is back-propagated. Head weights come from
`model.heads` in the config; a head with weight 0 is not built. With `grad_reverse` on, the
demographic heads see the features through a gradient-reversal layer (Ganin & Lempitsky, 2015):
they still learn to predict gender/race, but the backbone is pushed to make its forgery features
carry no demographic information.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fairforge.config.train import ModelConfig

from .backbones import create_backbone


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


class GradReverse(nn.Module):
    """Identity forward, gradient times -scale backward."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GradReverse.apply(x, self.scale)


#: Head builders by name: (in_features, out_features) -> module.
HEADS: dict[str, Callable[[int, int], nn.Module]] = {
    "linear": lambda d, k: nn.Linear(d, k),
    "mlp": lambda d, k: nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, k)),
}

DEMOGRAPHIC_HEADS = ("gender", "race", "group")


class MultiTaskDetector(nn.Module):
    """Backbone features -> real/fake logit (+ gender/race/group logits)."""

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        head_sizes: Mapping[str, int],
        weights: Mapping[str, float],
        head: str = "linear",
        grad_reverse: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        # the real/fake head always exists (it is what `predict` reads); a demographic head only when weighted
        self.weights = {"cls": float(weights.get("cls", 1.0))}
        self.weights.update({k: float(weights[k]) for k in head_sizes if weights.get(k, 0.0) > 0.0})
        self.cls_head = HEADS[head](num_features, 1)
        self.demographic = nn.ModuleDict(
            {k: HEADS[head](num_features, n) for k, n in head_sizes.items() if k in self.weights}
        )
        self.reverse = GradReverse(grad_reverse) if grad_reverse is not None else nn.Identity()

    @classmethod
    def from_config(cls, cfg: ModelConfig, num_genders: int, num_races: int, num_groups: int) -> MultiTaskDetector:
        backbone = create_backbone(cfg)
        return cls(
            backbone,
            backbone.num_features,
            {"gender": num_genders, "race": num_races, "group": num_groups},
            cfg.heads.model_dump(),
            head=cfg.head,
            grad_reverse=cfg.grad_reverse_scale if cfg.grad_reverse else None,
        )

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = self.backbone(batch["image"])
        out = {"features": features, "logits": self.cls_head(features).squeeze(-1)}
        if len(self.demographic):
            reversed_features = self.reverse(features)
            for name, head in self.demographic.items():
                out[name] = head(reversed_features)
        return out

    def losses(self, batch: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """BCE on real/fake, CE on each demographic head (rows with unknown attribute, -1, ignored)."""
        losses = {"cls": F.binary_cross_entropy_with_logits(out["logits"].float(), batch["label"].float())}
        for name in self.demographic:
            # mean CE over rows whose attribute is known (-1: unknown); 0 when none is, without a
            # host sync (no `.any()`), and the head stays in the graph (DDP expects its gradient)
            target = batch[name]
            known = target >= 0
            per_row = F.cross_entropy(out[name].float(), target.clamp(min=0), reduction="none")
            losses[name] = (per_row * known).sum() / known.sum().clamp(min=1)
        losses["overall"] = sum(self.weights[k] * v for k, v in losses.items())
        return losses

    @staticmethod
    def prob_fake(out: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(out["logits"].float())


__all__ = ["DEMOGRAPHIC_HEADS", "HEADS", "GradReverse", "MultiTaskDetector"]
