"""`ddfg` (the default): the data-driven fairness-generalization recipe.

Three ingredients, two of them outside the loss: (1) the balanced synthetic set mixed with real
data (the training manifests and `data.balance`), (2) sharpness-aware minimization (a flat
minimum generalizes across datasets; `optimizer.name: sam`), and (3) multi-task learning: the
real/fake head trained together with demographic heads (`model.heads.group/gender/race`), so the
features are organized around the groups the fairness metrics measure. The network and loss are
ERM's multi-task detector; what makes the method is the configuration, which `check_config`
enforces so a run called `ddfg` is one.
"""

from __future__ import annotations

from fairforge.config.train import TrainConfig
from fairforge.errors import ConfigError

from . import register_method
from .erm import ERM


@register_method("ddfg")
class DDFG(ERM):
    def check_config(self, cfg: TrainConfig) -> None:
        if cfg.optimizer.name != "sam":
            raise ConfigError(
                f"optimizer.name: method ddfg trains with SAM, got {cfg.optimizer.name!r}; use erm otherwise"
            )
        heads = cfg.model.heads
        if max(heads.gender, heads.race, heads.group) <= 0.0:
            raise ConfigError(
                "model.heads: method ddfg is multi-task: give at least one of gender/race/group a weight > 0"
            )
