"""The contract between the trainer (`train/run.py`) and a training method.

A method is a small class registered by name (`@register_method("erm")`) and chosen by
`method:` in the config; everything else in a run (data, Accelerator, checkpoints, validation,
logging) is the trainer's and is the same for every method, so comparing methods means changing
one line of YAML. A method answers three questions:

1. `build_model(cfg, info) -> nn.Module`: which network. Called after `set_seed`, before
   `accelerator.prepare`, on every process. `info` (`DataInfo`, made by train/data.py) carries what the training manifests
   say: group names and per-group counts (LDAM margins), domain names (RoGA, PG-FDD), method names
   (PG-FDD's specific head), label counts. The module may be anything; `MultiTaskDetector`
   (train/detector.py) is the usual choice.

2. `training_step(ctx, batch) -> dict[str, Tensor | float]`: ONE whole optimizer update on `batch`
   (the per-process batch, already on the device). The method does the forward/backward passes
   and the optimizer step itself, because that is where methods differ: ERM does one
   forward/backward, SAM two, RoGA K+1. Most methods only define their loss and hand it to the
   configured update rule:

       def training_step(self, ctx, batch):
           return ctx.update(lambda: my_losses(ctx.model, batch))

   `ctx.update(loss_fn)` runs the rule chosen by the config (`optimizer.name: sam` -> the SAM
   update, otherwise a plain one; train/updates/) and calls `loss_fn()` once per forward pass it
   needs. `loss_fn` does a forward pass through `ctx.model` (the prepared, possibly DDP-wrapped
   module: call it, do not call `ctx.unwrapped` for the forward, or DDP will not sync) and returns
   named scalar losses including `"overall"`, the one that is back-propagated. The rule does
   backward, unscale/clip, optimizer and scheduler steps, BN handling and DDP `no_sync`, and returns
   the losses of the first pass detached. A method that needs its own update (RoGA) uses
   `ctx.accelerator`, `ctx.model`, `ctx.optimizer` (prepared; `ctx.sam` is the bare SAM or None),
   `ctx.scheduler`, and must step the scheduler once per update (`ctx.scheduler.step()`).
   Return values are detached scalars (tensors are fine: the trainer calls `.item()` only when it
   logs, so a GPU is not synchronized every step); they are logged as `train/<key>`.

3. `predict(model, batch) -> Tensor`: P(fake) in [0, 1], shape [B], float, for validation and
   `fairforge train predict`. `model` is the unwrapped module in eval mode under `torch.no_grad()`.
   `reference_score(model, batch)` is the score the method's authors' test script reports, where
   it differs (`fairforge train predict --score reference`); by default it is `predict`.

Optional hooks: `check_config(cfg)` raises `ConfigError` for settings the method cannot use (it
runs before anything is built); `paired_batches` (class attribute) asks the data loader for the SBI
recipe's real/fake pairs whatever `data.paired` says; `real_fake_halves` for batches of
batch_size/2 reals followed by batch_size/2 fakes (PG-FDD's pair loader).

Batches are dicts of tensors (data.py `collate`): `image` float [B,3,H,W] normalized; `label`
long [B] (0 real, 1 fake); `gender`, `race`, `group` long [B] indexes into `info.genders`,
`info.races`, `info.groups`, -1 where unknown; `domain`, `method`, `source` long [B] indexes into
`info.domains`, `info.methods`, `info.sources`; `index` long [B] (row of the concatenated training
manifests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from fairforge.config.train import TrainConfig
from fairforge.train.data import DataInfo

if TYPE_CHECKING:
    from accelerate import Accelerator

    from fairforge.train.sam import SAM

#: One forward pass over the batch -> named scalar losses, `"overall"` among them.
LossFn = Callable[[], Mapping[str, torch.Tensor]]
Batch = dict[str, torch.Tensor]
StepLogs = dict[str, "torch.Tensor | float"]


@dataclass
class StepContext:
    """Everything a method's `training_step` may touch; rebuilt by the trainer for every step."""

    accelerator: Accelerator
    model: nn.Module
    optimizer: Any
    scheduler: Any
    config: TrainConfig
    info: DataInfo
    step: int
    update_rule: Callable[[StepContext, LossFn], StepLogs] = field(repr=False)

    @property
    def unwrapped(self) -> nn.Module:
        """The bare module (DDP and mixed-precision wrappers removed): for its attributes and `losses`."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def sam(self) -> SAM | None:
        """The bare SAM optimizer when the config uses SAM, else None."""
        from fairforge.train.sam import SAM

        inner = getattr(self.optimizer, "optimizer", self.optimizer)
        return inner if isinstance(inner, SAM) else None

    def update(self, loss_fn: LossFn) -> StepLogs:
        """One optimizer update with the configured rule (plain or SAM); see the module docstring."""
        return self.update_rule(self, loss_fn)


class Method(ABC):
    """Base class: subclasses set nothing but what differs. See the module docstring."""

    name: ClassVar[str] = ""
    #: ask the data loader for the SBI recipe's real/fake pairs
    paired_batches: ClassVar[bool] = False
    #: ask the data loader for batches whose first half is real and second half fake
    real_fake_halves: ClassVar[bool] = False

    def check_config(self, cfg: TrainConfig) -> None:
        """Raise `ConfigError` (naming the key path) for settings this method cannot honour."""
        return None  # optional hook: no constraints unless a method adds them

    @abstractmethod
    def build_model(self, cfg: TrainConfig, info: DataInfo) -> nn.Module: ...

    @abstractmethod
    def training_step(self, ctx: StepContext, batch: Batch) -> StepLogs: ...

    @abstractmethod
    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    def reference_score(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The authors' test-time score in [0, 1] where it is not `predict`'s P(fake); see the docstring."""
        return self.predict(model, batch)
