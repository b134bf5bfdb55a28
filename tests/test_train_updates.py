"""The update-rule package: the registry, and SAM handing its perturbation to the rules built on it."""

from __future__ import annotations

import pytest
import torch
from test_train_methods import TinyNet, _batch, _ctx, _grad_at, _sam_cfg

from fairforge.errors import ConfigError
from fairforge.train.updates import UPDATES, get_update, plain_update, sam_update


def test_rules_are_registered_and_chosen_by_optimizer() -> None:
    assert UPDATES.names() == ["efficient_sam", "plain", "sam"]
    assert get_update("sam", None) is sam_update and get_update("adam", None) is plain_update
    with pytest.raises(ConfigError, match=r"^optimizer.update: unknown update rule 'nope'; expected one of"):
        get_update("sam", "nope")


def test_sam_hands_the_perturbation_and_the_sharp_gradient_explicitly() -> None:
    cfg = _sam_cfg()
    batch = _batch()
    ctx = _ctx(TinyNet(), cfg, update_rule=sam_update)
    net = ctx.unwrapped
    w0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    g = _grad_at(net, batch, w0)
    norm = torch.sqrt(sum((t**2).sum() for t in g))
    e = [0.3 * t / norm for t in g]
    g_s = _grad_at(net, batch, {k: w0[k] + ei for k, ei in zip(w0, e)})
    seen: dict[str, list[torch.Tensor]] = {}
    calls: list[str] = []

    def on_ascent(params: list[torch.Tensor], perturbation: list[torch.Tensor]) -> None:
        calls.append("ascent")
        seen["params"], seen["e"] = params, perturbation

    def before_step() -> None:
        calls.append("step")
        seen["grad"] = [p.grad.detach().clone() for p in seen["params"]]

    def loss_fn() -> dict[str, torch.Tensor]:
        calls.append("loss")
        return net.losses(batch, ctx.model(batch))

    sam_update(ctx, loss_fn, on_ascent=on_ascent, before_step=before_step)
    assert calls == ["loss", "ascent", "loss", "step"]
    assert [id(p) for p in seen["params"]] == [id(p) for p in net.parameters()]
    for got, want in zip(seen["e"], e):
        assert torch.allclose(got, want, atol=1e-6)
    for got, want in zip(seen["grad"], g_s):
        assert torch.allclose(got, want, atol=1e-6)
    for (name, p), gs in zip(net.named_parameters(), g_s):  # the base step used g_s at w0
        assert torch.allclose(p.detach(), w0[name] - 0.1 * gs, atol=1e-6), name
