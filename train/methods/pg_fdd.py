"""`pg_fdd`: Preserving Fairness Generalization in Deepfake Detection (Lin et al., CVPR 2024).

Features, loss and optimization together: the network (train/pg_fdd_model.py) disentangles
domain-specific, domain-agnostic and demographic features and detects from AdaIN(demographic,
agnostic); the loss is

    L = L_cls + 0.1 L_spe + 0.3 L_rec + 0.05 L_con + 0.1 L_dem + 1.0 L_fuse       (`pg_fdd.weights`)

* L_cls: cross-entropy of the shared (agnostic) head on real/fake;
* L_spe: cross-entropy of the specific head on "real or which manipulation": class 0 for every
  real row, 1 + k for a fake of the k-th manipulation (`DataInfo.fake_methods`), contiguous as the
  authors' labels (FF++: real, Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter);
* L_rec: the decoder's four L1 reconstructions (self and crossed, see the model);
* L_con: the triplet contrastive loss, margin 3 (`losses.disentangle_contrastive_loss`);
* L_dem: LDAM (scale 30, margins 0.5 n_g^-1/4 / max_h n_h^-1/4 from the training manifests' group
  counts) on the demographic head's intersectional group;
* L_fuse: the bi-level CVaR (inner 0.9 per group, outer 0.5 smoothed with tau1 1e-3, tau2 1e-4) of
  the fused head's per-sample cross-entropy;

and the optimizer is SAM (rho 0.05) over SGD (lr 5e-4, momentum 0.9, weight decay 5e-3), which is
`train/configs/pg_fdd.yaml`. Every batch is the authors' pair loader's: the first half reals, the
second half fakes (`real_fake_halves`), so the cross reconstruction always crosses a real with a
fake. Inference uses the fused head only (`predict`). `pg_fdd.fair_loss: reference` computes L_fuse
as the authors' code does (train/METHODS.md says where and by how much that differs).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fairforge.config.train import TrainConfig
from fairforge.errors import ConfigError
from fairforge.train.backbones import create_backbone
from fairforge.train.data import DataInfo
from fairforge.train.losses import bilevel_cvar, disentangle_contrastive_loss, ldam_loss, ldam_margins
from fairforge.train.pg_fdd_model import PGFDDNet

from . import register_method
from .base import Batch, Method, StepContext, StepLogs


def specific_classes(info: DataInfo) -> torch.Tensor:
    """`method` index -> specific class: 1 + the position among `info.fake_methods`, 0 for the others."""
    position = {name: i + 1 for i, name in enumerate(info.fake_methods)}
    return torch.tensor([position.get(name, 0) for name in info.methods], dtype=torch.long)


def specific_labels(batch: Batch, classes: torch.Tensor) -> torch.Tensor:
    """Class of the specific head: 0 for real images, 1 + the manipulation's position for fakes."""
    fake = classes.to(batch["method"].device)[batch["method"].clamp_min(0)]
    return torch.where(batch["label"] == 0, torch.zeros_like(fake), fake)


def pg_fdd_losses(
    net: nn.Module, batch: Batch, out: Mapping[str, torch.Tensor], cfg: TrainConfig, num_groups: int
) -> dict[str, torch.Tensor]:
    """PG-FDD's six named losses and their weighted sum `overall`."""
    c = cfg.pg_fdd
    label = batch["label"]
    spe = specific_labels(batch, net.specific_classes)
    image = batch["image"].float()
    losses = {
        "cls": F.cross_entropy(out["shared"].float(), label),
        "spe": F.cross_entropy(out["specific"].float(), spe),
        # the published four half-batch L1 means (self A, self B, cross A, cross B) = 2 x the two full means
        "rec": 2.0 * (F.l1_loss(out["recon_self"].float(), image) + F.l1_loss(out["recon_cross"].float(), image)),
        "con": disentangle_contrastive_loss(
            out["feat_shared"].float(), out["feat_specific"].float(), label, spe, c.triplet_margin
        ),
        "dem": ldam_loss(out["demographic"].float(), batch["group"], net.ldam_margins, c.ldam_scale),
        "fuse": bilevel_cvar(
            F.cross_entropy(out["fused"].float(), label, reduction="none"),
            batch["group"],
            num_groups,
            c.inner_alpha,
            c.outer_alpha,
            smooth=(c.tau1, c.tau2),
            reference=c.fair_loss == "reference",
        ),
    }
    w = c.weights
    losses["overall"] = (
        losses["cls"]
        + w.spe * losses["spe"]
        + w.rec * losses["rec"]
        + w.con * losses["con"]
        + w.dem * losses["dem"]
        + w.fuse * losses["fuse"]
    )
    return losses


@register_method("pg_fdd")
class PGFDD(Method):
    real_fake_halves = True

    def check_config(self, cfg: TrainConfig) -> None:
        if cfg.data.batch_size < 2 or cfg.data.batch_size % 2:
            raise ConfigError(
                f"data.batch_size: pg_fdd's batches are half real, half fake; use an even size >= 2, got "
                f"{cfg.data.batch_size}"
            )
        if cfg.data.paired:
            raise ConfigError("data.paired: pg_fdd makes its own real-half/fake-half batches; set it to false")

    def build_model(self, cfg: TrainConfig, info: DataInfo) -> nn.Module:
        net = PGFDDNet(
            lambda: create_backbone(cfg.model),
            num_specific=1 + len(info.fake_methods),
            num_groups=info.num_groups,
            feat_dim=cfg.pg_fdd.feat_dim,
        )
        counts = [max(int(n), 0) for n in info.group_counts]
        if not any(counts):
            raise ConfigError("method pg_fdd: the training manifests have no row with a known gender-race group (LDAM)")
        # derived from `info` (stored with the checkpoint), so not part of the weights
        net.register_buffer("ldam_margins", ldam_margins(counts, cfg.pg_fdd.ldam_max_margin), persistent=False)
        net.register_buffer("specific_classes", specific_classes(info), persistent=False)
        return net

    def training_step(self, ctx: StepContext, batch: Batch) -> StepLogs:
        net = ctx.unwrapped

        def loss_fn() -> dict[str, torch.Tensor]:
            return pg_fdd_losses(net, batch, ctx.model(batch), ctx.config, ctx.info.num_groups)

        return ctx.update(loss_fn)

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return torch.softmax(model.detect(batch["image"]).float(), dim=-1)[:, 1]

    def reference_score(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The authors' test.py: sigmoid of the fused head's fake logit alone (their validation: the softmax)."""
        return torch.sigmoid(model.detect(batch["image"]).float()[:, 1])
