"""The published fair methods (dag_fdd, daw_fdd, pg_fdd, roga) and efficient SAM, unit level.

RoGA's update against a hand-written reference of its definition, efficient SAM's reuse steps
against the formulas, PG-FDD's network and loss on a tiny backbone. The end-to-end runs (every method,
1 and 2 processes, through `train/run.py`'s `train`) are in test_train_methods_run.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.func import functional_call

from fairforge.config.train import TrainConfig
from fairforge.train.losses import bilevel_cvar, ldam_margins
from fairforge.train.methods import get_method
from fairforge.train.methods.base import StepContext
from fairforge.train.methods.roga import ALIGN
from fairforge.train.optim import build_optimizer
from fairforge.train.sam import SAM
from fairforge.train.updates.efficient_sam import ORTHOGONAL, PERTURBATION, efficient_sam_update


class TinyNet(nn.Module):
    """conv -> BN -> pool -> linear, dict in / dict out like the detector, with `losses`."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = F.relu(self.bn(self.conv(batch["image"]))).mean(dim=(2, 3))
        return {"logits": self.fc(x).squeeze(-1)}

    def losses(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = F.binary_cross_entropy_with_logits(out["logits"], batch["label"].float())
        return {"cls": loss, "overall": loss}


def _batch(n: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(n, 3, 6, 6, generator=gen),
        "label": torch.randint(0, 2, (n,), generator=gen),
        "domain": torch.tensor([0, 0, 1, 2, 1, 2, 0, 1, 2, 2])[:n],
        "group": torch.randint(-1, 8, (n,), generator=gen),
    }


def _ctx(model: nn.Module, cfg: TrainConfig, step: int = 0, update_rule=None) -> StepContext:  # noqa: ANN001
    accelerator = Accelerator(cpu=True)
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer.optimizer.base_optimizer if isinstance(optimizer.optimizer, SAM) else optimizer.optimizer,
        lambda _: 1.0,
    )
    return StepContext(accelerator, model, optimizer, scheduler, cfg, None, step, update_rule)  # type: ignore[arg-type]


def _roga_reference(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    rho: float,
    align: str,
    weight: float,
    lr: float,
    reals: str = "own_domain",
):
    """RoGA's update written out from its definition with torch.func (no shared code path).

    `own_domain`: the domains partition the batch and g is their n_k/n-weighted gradient sum;
    `shared`: a domain is one domain's fakes plus every real, g the full batch's gradient.
    """
    model = copy.deepcopy(model)
    names = [n for n, _ in model.named_parameters()]
    w = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}

    def loss_at(params: dict[str, torch.Tensor], sub: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.losses(sub, functional_call(model, params, (sub,)))["overall"]

    n = batch["domain"].numel()
    if reals == "own_domain":
        domains = sorted(set(batch["domain"].tolist()))
        subs = [{k: v[batch["domain"] == d] for k, v in batch.items()} for d in domains]
    else:
        fake, real = batch["label"] == 1, batch["label"] == 0
        domains = sorted(set(batch["domain"][fake].tolist()))
        subs = [{k: v[(fake & (batch["domain"] == d)) | real] for k, v in batch.items()} for d in domains]
    g_k = [torch.autograd.grad(loss_at(w, sub), [w[k] for k in names]) for sub in subs]
    if reals == "own_domain":
        g = [sum(len(sub["label"]) / n * gk[i] for gk, sub in zip(g_k, subs)) for i in range(len(names))]
    else:
        g = list(torch.autograd.grad(loss_at(w, batch), [w[k] for k in names]))
    total = [torch.zeros_like(t) for t in g]
    for gk, sub in zip(g_k, subs):
        norm = torch.sqrt(sum((t**2).sum() for t in gk))
        ascent = {k: (w[k] + rho * gk[i] / norm).detach().requires_grad_(True) for i, k in enumerate(names)}
        h = torch.autograd.grad(loss_at(ascent, sub), [ascent[k] for k in names])
        dot = sum((a * b).sum() for a, b in zip(h, g))
        if align == "pcgrad" and dot < 0:
            gg = sum((b * b).sum() for b in g)
            h = [a - dot / gg * b for a, b in zip(h, g)]
        elif align == "sign":
            h = [a * (torch.sign(a) == torch.sign(b)) for a, b in zip(h, g)]
        total = [t + a / len(subs) for t, a in zip(total, h)]
    return {k: (w[k] - lr * (g[i] + weight * total[i])).detach() for i, k in enumerate(names)}


@pytest.mark.parametrize("reals", ["own_domain", "shared"])
@pytest.mark.parametrize("align", ["pcgrad", "sign", "none"])
def test_roga_step_equals_hand_written_reference(align: str, reals: str) -> None:
    cfg = TrainConfig(method="roga")
    cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum = "sgd", 0.1, 0.0
    cfg.roga.align, cfg.roga.rho, cfg.roga.weight, cfg.roga.reals = align, 0.5, 0.7, reals
    model, batch = TinyNet(), _batch(seed=4)  # seed 4: two of the three h_k oppose g (the pcgrad branch runs)
    fake_domains = len(set(batch["domain"][batch["label"] == 1].tolist()))
    expected = _roga_reference(model, batch, 0.5, align, 0.7, 0.1, reals)
    ctx = _ctx(model, cfg)
    logs = get_method("roga").training_step(ctx, batch)
    assert float(logs["domains"]) == (3.0 if reals == "own_domain" else fake_domains)
    for name, p in ctx.unwrapped.named_parameters():
        assert torch.allclose(p.detach(), expected[name], atol=1e-6), name


def test_roga_domains_are_manipulations_with_the_reals_shared() -> None:
    from fairforge.train.methods.roga import domain_subsets

    domain = torch.tensor([0, 0, 1, 2, 1, 2])  # index 0: the reals' own `domain` value, ignored when shared
    label = torch.tensor([0, 0, 1, 1, 1, 1])
    masks, weights = domain_subsets(domain, label, "shared")
    assert [m.tolist() for m in masks] == [
        [True, True, True, False, True, False],
        [True, True, False, True, False, True],
    ]
    assert weights == [4 / 6, 4 / 6]
    masks, weights = domain_subsets(domain, label, "own_domain")
    assert len(masks) == 3 and weights == [2 / 6, 2 / 6, 2 / 6]
    only_reals, _ = domain_subsets(domain[:2], label[:2], "shared")
    assert [m.tolist() for m in only_reals] == [[True, True]]


def test_roga_pcgrad_projects_only_conflicts() -> None:
    g = [torch.tensor([1.0, 0.0])]
    agree = ALIGN["pcgrad"]([torch.tensor([1.0, 2.0])], g)[0]
    conflict = ALIGN["pcgrad"]([torch.tensor([-1.0, 2.0])], g)[0]
    assert agree.tolist() == [1.0, 2.0]
    assert conflict.tolist() == [0.0, 2.0]  # the part against g removed, the orthogonal part kept
    assert ALIGN["sign"]([torch.tensor([-1.0, 2.0])], [torch.tensor([1.0, 1.0])])[0].tolist() == [0.0, 2.0]


def test_roga_refuses_sam_and_fp16() -> None:
    from fairforge.errors import ConfigError

    with pytest.raises(ConfigError, match="optimizer.name"):
        get_method("roga").check_config(TrainConfig(method="roga"))
    cfg = TrainConfig(method="roga", mixed_precision="fp16")
    cfg.optimizer.name = "sgd"
    with pytest.raises(ConfigError, match="mixed_precision"):
        get_method("roga").check_config(cfg)


def _sam_cfg(**optimizer: object) -> TrainConfig:
    cfg = TrainConfig(method="erm")
    data = {"name": "sam", "base": "sgd", "lr": 0.1, "momentum": 0.0, "rho": 0.3, **optimizer}
    cfg.optimizer = type(cfg.optimizer).model_validate(data)
    return cfg


def _grad_at(model: nn.Module, batch: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    model = copy.deepcopy(model)
    ps = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    loss = model.losses(batch, functional_call(model, ps, (batch,)))["overall"]
    return list(torch.autograd.grad(loss, list(ps.values())))


def test_every_k_selects_the_efficient_rule() -> None:
    assert _sam_cfg(every=5).optimizer.update == "efficient_sam"
    assert _sam_cfg(reuse="looksam").optimizer.update == "efficient_sam"
    assert _sam_cfg().optimizer.update is None


def test_a_dumped_sam_config_reloads_with_its_own_rule() -> None:
    """A saved config carries every key with its default; reloading it must not switch the rule."""
    for optimizer in ({}, {"every": 5}, {"reuse": "looksam"}):
        saved = _sam_cfg(**optimizer).optimizer
        reloaded = type(saved).model_validate(saved.model_dump())
        assert reloaded.update == saved.update


def test_efficient_sam_reuses_the_stored_perturbation() -> None:
    cfg = _sam_cfg(every=3)
    model, batch = TinyNet(), _batch()
    ctx = _ctx(model, cfg, step=0, update_rule=efficient_sam_update)
    net = ctx.unwrapped
    start = {k: v.detach().clone() for k, v in net.named_parameters()}
    # full SAM step: e = rho g / ||g|| at the start point; stored
    g = _grad_at(net, batch, start)
    norm = torch.sqrt(sum((t**2).sum() for t in g))
    e = [0.3 * t / norm for t in g]

    def loss_fn() -> dict[str, torch.Tensor]:
        return ctx.unwrapped.losses(batch, ctx.model(batch))

    ctx.update(loss_fn)
    stored = [ctx.sam.state[p][PERTURBATION] for p in net.parameters()]
    for a, b in zip(stored, e):
        assert torch.allclose(a, b, atol=1e-6)
    # next update (step 1, not a multiple of 3): one pass at w1 + e, step with that gradient
    w1 = {k: v.detach().clone() for k, v in net.named_parameters()}
    h = _grad_at(net, batch, {k: w1[k] + ei for k, ei in zip(w1, e)})
    ctx.step = 1
    calls = 0

    def counting_loss_fn() -> dict[str, torch.Tensor]:
        nonlocal calls
        calls += 1
        return loss_fn()

    ctx.update(counting_loss_fn)
    assert calls == 1
    for (name, p), hi in zip(net.named_parameters(), h):
        assert torch.allclose(p.detach(), w1[name] - 0.1 * hi, atol=1e-6), name


def test_looksam_reuses_the_orthogonal_component() -> None:
    cfg = _sam_cfg(every=2, reuse="looksam", looksam_alpha=0.7)
    model, batch = TinyNet(), _batch()
    ctx = _ctx(model, cfg, step=0, update_rule=efficient_sam_update)
    net = ctx.unwrapped
    w0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    g = _grad_at(net, batch, w0)
    norm = torch.sqrt(sum((t**2).sum() for t in g))
    g_s = _grad_at(net, batch, {k: w0[k] + 0.3 * t / norm for k, t in zip(w0, g)})
    coef = sum((a * b).sum() for a, b in zip(g_s, g)) / norm**2
    g_v = [a - coef * b for a, b in zip(g_s, g)]

    def loss_fn() -> dict[str, torch.Tensor]:
        return ctx.unwrapped.losses(batch, ctx.model(batch))

    ctx.update(loss_fn)
    for p, expected in zip(net.parameters(), g_v):
        assert torch.allclose(ctx.sam.state[p][ORTHOGONAL], expected, atol=1e-6)
    w1 = {k: v.detach().clone() for k, v in net.named_parameters()}
    g1 = _grad_at(net, batch, w1)
    scale = 0.7 * torch.sqrt(sum((t**2).sum() for t in g1)) / torch.sqrt(sum((t**2).sum() for t in g_v))
    ctx.step = 1
    ctx.update(loss_fn)
    for (name, p), a, b in zip(net.named_parameters(), g1, g_v):
        assert torch.allclose(p.detach(), w1[name] - 0.1 * (a + scale * b), atol=1e-6), name


def test_pg_fdd_network_and_losses(tiny_cache) -> None:  # noqa: ANN001
    from fairforge.taxonomy import DEFAULT_TAXONOMY
    from fairforge.train.data import DataInfo

    cfg = TrainConfig(method="pg_fdd")
    cfg.model.backbone = "tiny"
    cfg.pg_fdd.feat_dim = 16
    info = DataInfo(
        DEFAULT_TAXONOMY, ("real", "Deepfakes"), ("real", "Deepfakes"), ("toy",), (5,) * 8, (4, 4), 8, ("Deepfakes",)
    )
    method = get_method("pg_fdd")
    net = method.build_model(cfg, info)
    assert torch.allclose(net.ldam_margins, ldam_margins([5] * 8))
    batch = {
        "image": torch.randn(4, 3, 64, 64),
        "label": torch.tensor([0, 0, 1, 1]),
        "method": torch.tensor([0, 0, 1, 1]),
        "group": torch.tensor([0, 5, 5, -1]),
    }
    from fairforge.train.methods.pg_fdd import pg_fdd_losses

    out = net(batch)
    assert out["recon_self"].shape == batch["image"].shape and out["specific"].shape == (4, 2)
    losses = pg_fdd_losses(net, batch, out, cfg, info.num_groups)
    assert set(losses) == {"cls", "spe", "rec", "con", "dem", "fuse", "overall"}
    expected_fuse = bilevel_cvar(
        F.cross_entropy(out["fused"], batch["label"], reduction="none"), batch["group"], 8, 0.9, 0.5, (1e-3, 1e-4)
    )
    assert torch.allclose(losses["fuse"], expected_fuse)
    w = cfg.pg_fdd.weights
    total = losses["cls"] + w.spe * losses["spe"] + w.rec * losses["rec"] + w.con * losses["con"]
    total = total + w.dem * losses["dem"] + w.fuse * losses["fuse"]
    assert torch.allclose(losses["overall"], total)
    losses["overall"].backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    assert not unused, unused  # DDP needs every parameter in the graph
    net.eval()
    with torch.no_grad():
        probs = method.predict(net, batch)
        fused = torch.softmax(net(batch)["fused"], -1)[:, 1]  # inference is the fused head
    assert probs.shape == (4,) and torch.allclose(probs, fused, atol=1e-6)
