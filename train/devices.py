"""Which Accelerate backend a process should ask for."""

from __future__ import annotations

import torch


def no_accelerator() -> bool:
    """True when torch sees no GPU-like device.

    Why it matters: on such a machine Accelerate must be told `cpu=True`, or a multi-process launch
    does not form one gloo process group (see the README's CPU command), and the trainer and
    `predict` would each guess differently.
    """
    if hasattr(torch, "accelerator"):
        return not torch.accelerator.is_available()
    return not torch.cuda.is_available()


__all__ = ["no_accelerator"]
