"""Sharpness-Aware Minimization (Foret et al., ICLR 2021) and ASAM (Kwon et al., ICML 2021).

The API is the one researchers know from the popular PyTorch SAM (davda54/sam):

    optimizer = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    loss_fn(model(x), y).backward()
    optimizer.first_step(zero_grad=True)       # w -> w + e(w)
    loss_fn(model(x), y).backward()            # gradient at the perturbed point
    optimizer.second_step(zero_grad=True)      # w back, base step with that gradient

with e(w) = rho * g / ||g|| (one norm over every parameter), and for ASAM (`adaptive=True`)
e(w) = rho * w^2 * g / || |w| g ||. The base optimizer is built by SAM over the same parameter
groups, so an LR scheduler is attached to `optimizer.base_optimizer` (or to SAM: the groups are the
same objects). `state_dict` is the base optimizer's: the only SAM state, the saved weights, lives
between `first_step` and `second_step` and is never checkpointed.

What SAM alone does not handle, and the trainer's SAM update (train/updates/) does: batch-norm
running statistics must be updated by the first pass only (`bn_update_off`), DDP's first backward
must not all-reduce when the ascent is local, and fp16 gradient scaling must be undone before the
ascent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase


class SAM(torch.optim.Optimizer):
    """SAM / ASAM around any base optimizer class; `**kwargs` go to the base optimizer."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: Callable[..., torch.optim.Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        **kwargs: Any,
    ) -> None:
        if rho < 0.0:
            raise ValueError(f"SAM: rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    def _grads(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        params = [p for p in group["params"] if p.grad is not None]
        return params, [p.grad for p in params]

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """|| g || over every parameter (ASAM: || |w| g ||), as a 0-d tensor on the first parameter's device."""
        norms: list[torch.Tensor] = []
        device = None
        for group in self.param_groups:
            params, grads = self._grads(group)
            if not params:
                continue
            device = device or params[0].device
            if group["adaptive"]:
                grads = torch._foreach_mul(grads, torch._foreach_abs(params))
            norms.extend(n.to(device) for n in torch._foreach_norm(grads, 2.0))
        if not norms:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(norms), 2.0)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False, grad_norm: torch.Tensor | None = None) -> None:
        """Move to the ascent point w + e(w), remembering w. `grad_norm` reuses a norm already computed."""
        norm = self.grad_norm() if grad_norm is None else grad_norm
        for group in self.param_groups:
            params, grads = self._grads(group)
            if not params:
                continue
            scale = group["rho"] / (norm.to(params[0].device) + 1e-12)
            for p in params:
                self.state[p]["old_p"] = p.detach().clone()
            if group["adaptive"]:
                step = torch._foreach_mul(torch._foreach_mul(params, params), grads)
                torch._foreach_mul_(step, scale)
            else:
                step = torch._foreach_mul(grads, scale)
            torch._foreach_add_(params, step)
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def perturbation(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Between `first_step` and `restore`: the moved parameters and their perturbations e = w_now - w."""
        params = [p for group in self.param_groups for p in group["params"] if "old_p" in self.state[p]]
        return params, [p.detach() - self.state[p]["old_p"] for p in params]

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the weights saved by `first_step` (exactly: a copy, not a subtraction)."""
        for group in self.param_groups:
            for p in group["params"]:
                old = self.state[p].pop("old_p", None)
                if old is not None:
                    p.copy_(old)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w and take the base optimizer's step with the gradient of the ascent point."""
        self.restore()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """The whole SAM step; `closure` does a full forward and backward (gradients already hold the first)."""
        if closure is None:
            raise ValueError("SAM.step needs a closure doing forward + backward; or call first_step/second_step")
        closure = torch.enable_grad()(closure)
        self.first_step(zero_grad=True)
        loss = closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups


@contextlib.contextmanager
def bn_update_off(model: nn.Module) -> Iterator[None]:
    """Normalize with the batch's statistics but leave running statistics (and counters) untouched.

    Why: SAM's second forward pass sees the perturbed weights; its batch statistics describe a
    network that never exists outside the step, so folding them into the running averages would
    bias evaluation. With `track_running_stats` off, a training-mode norm layer uses batch statistics
    and updates nothing (unlike momentum=0, which still counts batches and breaks `momentum=None`).
    """
    touched = [m for m in model.modules() if isinstance(m, _NormBase) and m.track_running_stats]
    for module in touched:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in touched:
            module.track_running_stats = True


__all__ = ["SAM", "bn_update_off"]
