"""Config of the balance and release stages. Owned by the balance issue."""

from __future__ import annotations

from .base import StrictModel


class BalanceConfig(StrictModel):
    """Placeholder until the balance stage is built."""

    target_per_cell: int = 2


class ReleaseConfig(StrictModel):
    """Placeholder until the release stage is built."""

    repo_id: str | None = None
