"""SAM / ASAM against the formula written by hand, and the trainer's SAM update (BN, fp16 scaler)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.func import functional_call

from fairforge.config import load_model
from fairforge.config.train import TrainConfig
from fairforge.errors import ConfigError
from fairforge.train.methods.base import StepContext
from fairforge.train.optim import build_optimizer, build_scheduler
from fairforge.train.sam import SAM, bn_update_off
from fairforge.train.updates import get_update


def _problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    return model, torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)


def _reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rho: float, lr: float, adaptive: bool):
    """One SAM/ASAM step with SGD, straight from the papers' formulas."""
    names = [n for n, _ in model.named_parameters()]
    w = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def loss_at(params: list[torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(functional_call(model, dict(zip(names, params)), (x,)), y)

    g = torch.autograd.grad(loss_at(w), w)
    if adaptive:  # ASAM: e = rho T^2 g / ||T g||, T = |w|
        norm = torch.sqrt(sum(((wi.abs() * gi) ** 2).sum() for wi, gi in zip(w, g)))
        e = [rho * wi.detach() ** 2 * gi / norm for wi, gi in zip(w, g)]
    else:  # SAM: e = rho g / ||g||
        norm = torch.sqrt(sum((gi**2).sum() for gi in g))
        e = [rho * gi / norm for gi in g]
    w_adv = [(wi.detach() + ei).requires_grad_() for wi, ei in zip(w, e)]
    g_adv = torch.autograd.grad(loss_at(w_adv), w_adv)
    return [wi.detach() - lr * gi for wi, gi in zip(w, g_adv)]


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_step_equals_formula(adaptive: bool) -> None:
    model, x, y = _problem()
    expected = _reference(model, x, y, rho=0.5, lr=0.1, adaptive=adaptive)
    optimizer = SAM(model.parameters(), torch.optim.SGD, rho=0.5, adaptive=adaptive, lr=0.1)
    F.mse_loss(model(x), y).backward()
    optimizer.first_step(zero_grad=True)
    F.mse_loss(model(x), y).backward()
    optimizer.second_step(zero_grad=True)
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, atol=1e-6, rtol=0)
    assert all(p.grad is None for p in model.parameters())


def test_closure_step_equals_two_step_api_and_state_is_the_base_optimizers() -> None:
    model, x, y = _problem()
    twin = copy.deepcopy(model)
    a = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    b = SAM(twin.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    for _ in range(3):
        F.mse_loss(model(x), y).backward()
        a.first_step(zero_grad=True)
        F.mse_loss(model(x), y).backward()
        a.second_step(zero_grad=True)

        def closure() -> torch.Tensor:
            loss = F.mse_loss(twin(x), y)
            loss.backward()
            return loss

        closure()
        b.step(closure)
        b.zero_grad()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)
    state = a.state_dict()
    assert all("momentum_buffer" in s for s in state["state"].values())
    fresh = SAM(copy.deepcopy(model).parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    fresh.load_state_dict(state)
    assert fresh.param_groups is fresh.base_optimizer.param_groups


def _ctx(model: nn.Module, cfg: TrainConfig, accelerator: Accelerator) -> StepContext:
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = build_scheduler(optimizer.optimizer, cfg.scheduler, total_steps=10)
    rule = get_update(cfg.optimizer.name, cfg.optimizer.update)
    return StepContext(accelerator, model, optimizer, scheduler, cfg, None, 0, rule)  # type: ignore[arg-type]


def test_trainer_sam_update_equals_formula_and_steps_the_schedule() -> None:
    model, x, y = _problem()
    expected = _reference(model, x, y, rho=0.5, lr=0.1, adaptive=True)
    cfg = TrainConfig(
        optimizer={"name": "sam", "base": "sgd", "lr": 0.1, "momentum": 0.0, "rho": 0.5, "adaptive": True}
    )
    ctx = _ctx(model, cfg, Accelerator(cpu=True))
    ctx.update(lambda: {"overall": F.mse_loss(ctx.model(x), y)})
    for got, want in zip(ctx.unwrapped.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, atol=1e-6, rtol=0)
    assert ctx.scheduler.last_epoch == 1


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(1))


def test_bn_running_stats_change_once_per_sam_step() -> None:
    x, y = torch.randn(8, 3, 6, 6), torch.randn(8, 1)
    model = _bn_model()
    model(x)  # materialize the lazy layer
    bn = model[1]
    bn.reset_running_stats()
    once = copy.deepcopy(model)
    once(x)  # what one forward pass at the unperturbed weights does to the statistics
    cfg = TrainConfig(optimizer={"name": "sam", "base": "sgd", "lr": 0.1, "rho": 0.5})
    ctx = _ctx(model, cfg, Accelerator(cpu=True))
    ctx.update(lambda: {"overall": F.mse_loss(ctx.model(x), y)})
    assert int(bn.num_batches_tracked) == 1
    torch.testing.assert_close(bn.running_mean, once[1].running_mean)
    torch.testing.assert_close(bn.running_var, once[1].running_var)
    # cumulative averaging (momentum=None) is left alone too
    bn.momentum = None
    with bn_update_off(model):
        model(x + 5.0)
    assert int(bn.num_batches_tracked) == 1 and bn.track_running_stats
    torch.testing.assert_close(bn.running_mean, once[1].running_mean)


def test_bn_update_off_covers_timm_norm_layers(tiny_cache) -> None:
    from fairforge.config.train import ModelConfig
    from fairforge.train.backbones import create_backbone

    backbone = create_backbone(ModelConfig(backbone="tiny")).train()
    before = {k: v.clone() for k, v in backbone.state_dict().items() if "running" in k}
    assert before, "the tiny backbone has batch norm"
    with bn_update_off(backbone):
        backbone(torch.randn(2, 3, 32, 32))
    after = backbone.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_fp16_scaler_unscales_before_ascent_and_skips_on_inf() -> None:
    """The trainer's fp16 path with a real GradScaler (what Accelerate uses on a GPU)."""
    model, x, y = _problem()
    model = model.float()
    x, y = x.float(), y.float()
    expected = _reference(copy.deepcopy(model).double(), x.double(), y.double(), rho=0.5, lr=0.1, adaptive=False)
    cfg = TrainConfig(optimizer={"name": "sam", "base": "sgd", "lr": 0.1, "momentum": 0.0, "rho": 0.5})
    accelerator = Accelerator(cpu=True)
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    ctx = _ctx(model, cfg, accelerator)
    ctx.update(lambda: {"overall": F.mse_loss(ctx.model(x), y)})
    for got, want in zip(ctx.unwrapped.parameters(), expected):
        torch.testing.assert_close(got.detach().double(), want, atol=1e-5, rtol=0)
    assert ctx.scheduler.last_epoch == 1
    before = [p.detach().clone() for p in ctx.unwrapped.parameters()]
    scale = accelerator.scaler.get_scale()
    logs = ctx.update(lambda: {"overall": F.mse_loss(ctx.model(x), y) * float("inf")})
    assert logs["skipped"] == 1.0 and accelerator.scaler.get_scale() < scale
    assert all(torch.equal(p, q) for p, q in zip(ctx.unwrapped.parameters(), before))
    assert ctx.scheduler.last_epoch == 1


def test_sam_refuses_gradient_accumulation() -> None:
    with pytest.raises(ConfigError, match=r"^gradient_accumulation_steps: .*not supported with optimizer.name=sam"):
        load_model(TrainConfig, data={"optimizer": {"name": "sam"}, "gradient_accumulation_steps": 2})
    load_model(TrainConfig, data={"optimizer": {"name": "adamw"}, "gradient_accumulation_steps": 2})
