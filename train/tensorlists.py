"""Inner products and norms over lists of tensors: a model's gradient seen as one flat vector.

Shared by the update rules that treat the gradient geometrically (efficient SAM's LookSAM split,
RoGA's alignment); the per-tensor work uses torch's `_foreach` kernels, one launch per list.
"""

from __future__ import annotations

import torch


def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """sum_i <a_i, b_i>, a 0-d tensor."""
    return torch.stack([(x * y).sum() for x, y in zip(a, b)]).sum()


def norm(a: list[torch.Tensor]) -> torch.Tensor:
    """|| concat(a) ||_2, a 0-d tensor."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(a, 2.0)), 2.0)


__all__ = ["dot", "norm"]
