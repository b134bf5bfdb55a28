"""Config of the train stage (`train:` in pipelines.yaml, or a file under train/configs/).

Every field has a default, so `TrainConfig()` is a valid config (the `ddfg` method) and a YAML file
only states what differs. Cross-field rules that a single field cannot express (SAM with
gradient accumulation, a fairness bound without a metric) are checked here, at load time, with the
key path in the message, so a bad combination fails before any model is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import StrictModel
from .train_methods import DAGFDDConfig, DAWFDDConfig, PGFDDConfig, RoGAConfig


class AugmentConfig(StrictModel):
    """Training-time augmentations, all off by default (the published recipes use none)."""

    hflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a horizontal flip")
    color_jitter: float = Field(0.0, ge=0.0, le=1.0, description="strength of brightness/contrast/saturation jitter")
    jpeg_p: float = Field(0.0, ge=0.0, le=1.0, description="probability of a JPEG re-encode")
    jpeg_quality: tuple[int, int] = (60, 100)
    blur_p: float = Field(0.0, ge=0.0, le=1.0, description="probability of a Gaussian blur")
    blur_sigma: tuple[float, float] = (0.1, 2.0)


class DataConfig(StrictModel):
    """Which manifests to read and how to batch them."""

    train: list[str] = Field(default_factory=list, description="training manifests (files or folders)")
    val: list[str] = Field(
        default_factory=list, description="validation manifests; empty: the `val_split` rows of the training manifests"
    )
    train_split: str | None = Field("train", description="use only rows with this `split` (null: every row)")
    val_split: str | None = Field(
        "val", description="validation rows: this split of data.val (or of data.train when data.val is empty)"
    )
    resolution: int = Field(256, gt=0)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    batch_size: int = Field(32, gt=0, description="per process; the global batch is this times the process count")
    eval_batch_size: int = Field(64, gt=0)
    num_workers: int = Field(4, ge=0)
    pin_memory: bool | None = Field(None, description="null: on when training on a GPU")
    persistent_workers: bool = True
    prefetch_factor: int = Field(2, gt=0)
    balance: Literal["none", "label", "cell", "cell_label"] = Field(
        "none", description="sample with replacement so each label / intersectional cell / both is equally likely"
    )
    epoch_size: int | None = Field(None, gt=0, description="samples per epoch when balancing (null: the set's size)")
    paired: bool = Field(False, description="SBI recipe: each real image is followed by one of its blended fakes")
    pair_method: str = Field("sbi", description="the `method` of the fakes paired with their source (`src_id`)")
    skip_bad: bool = Field(
        False, description="skip corrupt/missing images (ids go to the run folder) instead of failing"
    )
    augment: AugmentConfig = AugmentConfig()


class HeadsConfig(StrictModel):
    """Loss weight of each head of the multi-task detector; a weight of 0 removes the head."""

    cls: float = Field(1.0, ge=0.0, description="real/fake")
    gender: float = Field(0.0, ge=0.0)
    race: float = Field(0.0, ge=0.0)
    group: float = Field(0.1, ge=0.0, description="intersectional gender-race group")


class ModelConfig(StrictModel):
    backbone: str = Field("efficientnet_b4", description="a timm name, `hf-hub:...` or `local-dir:FOLDER`")
    pretrained: bool | str = Field(
        False, description="true (timm's default weights), a hub id, a local .safetensors file, or false"
    )
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    head: Literal["linear", "mlp"] = "linear"
    heads: HeadsConfig = HeadsConfig()
    grad_reverse: bool = Field(False, description="gradient reversal before the demographic heads")
    grad_reverse_scale: float = Field(1.0, ge=0.0)


class OptimizerConfig(StrictModel):
    name: Literal["sam", "sgd", "adam", "adamw"] = "sam"
    base: Literal["sgd", "adam", "adamw"] = Field("sgd", description="the optimizer SAM wraps (name: sam)")
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    rho: float = Field(0.05, ge=0.0, description="SAM neighbourhood radius")
    adaptive: bool = Field(False, description="ASAM: scale the perturbation by |w|")
    ascent: Literal["local", "global"] = Field(
        "local",
        description="DDP: the SAM perturbation from each process's own gradient (SAM paper, no extra all-reduce) "
        "or from the all-reduced one",
    )
    update: str | None = Field(
        None, description="the update rule (train/updates.py); null: `sam` when name is sam, else `plain`"
    )
    # ---- efficient SAM (issue 9) adds its fields below this line ----
    every: int = Field(
        1, ge=1, description="efficient SAM: a fresh ascent every k updates, reused in between (1: SAM every step)"
    )
    reuse: Literal["perturbation", "looksam"] = Field(
        "perturbation",
        description="between fresh ascents: one pass at w + the last perturbation, or LookSAM's reuse of the "
        "SAM gradient's orthogonal part",
    )
    looksam_alpha: float = Field(0.7, ge=0.0, description="LookSAM's weight of the reused orthogonal component")

    @model_validator(mode="before")
    @classmethod
    def _efficient_sam_rule(cls, data: object) -> object:
        """`every`/`reuse` given and no explicit rule: use the efficient SAM rule (train/efficient_sam.py)."""
        if isinstance(data, dict) and data.get("update") is None and (data.get("every", 1) != 1 or "reuse" in data):
            return {**data, "update": "efficient_sam"}
        return data


class SchedulerConfig(StrictModel):
    name: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)


class SelectConfig(StrictModel):
    """How the best checkpoint is chosen from the per-epoch validation."""

    rule: Literal["auc", "auc_under_fairness"] = "auc"
    metric: str = Field("F_FPR", description="the intersectional fairness metric bounded (evaluate's F_* names)")
    bound: float = Field(10.0, ge=0.0, description="keep only epochs with metric <= bound (percent)")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        # evaluate's metric table is the one list of fairness metrics; read at validation time so
        # that importing the config schemas stays light.
        from fairforge.evaluate.metrics import FAIRNESS_METRICS

        if value not in FAIRNESS_METRICS:
            raise ValueError(f"expected one of {list(FAIRNESS_METRICS)}")
        return value


class TrainConfig(StrictModel):
    """A training run: data, model, method, optimizer, and the loop's bookkeeping."""

    method: str = Field("ddfg", description="a registered method: erm, ddfg, dag_fdd, daw_fdd, pg_fdd, roga")
    seed: int = 0
    output_dir: str = "runs/train"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer updates")
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_grad_norm: float | None = Field(None, gt=0.0)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    cpu: bool | None = Field(None, description="null: CPU when no accelerator is present")
    deterministic: bool = Field(False, description="torch deterministic algorithms (slower; exact resume)")
    log_with: list[str] = Field(default_factory=lambda: ["tensorboard"])
    log_every: int = Field(10, gt=0)
    checkpoint_every: int | None = Field(None, gt=0, description="save_state every N optimizer updates")
    keep_checkpoints: int | None = Field(3, gt=0, description="newest step checkpoints kept (null: all)")
    select: SelectConfig = SelectConfig()
    # ---- method sections (issue 9 adds one field per method with settings below this line) ----
    dag_fdd: DAGFDDConfig = DAGFDDConfig()
    daw_fdd: DAWFDDConfig = DAWFDDConfig()
    pg_fdd: PGFDDConfig = PGFDDConfig()
    roga: RoGAConfig = RoGAConfig()

    @field_validator("gradient_accumulation_steps")
    @classmethod
    def _sam_refuses_accumulation(cls, value: int, info: ValidationInfo) -> int:
        optimizer = info.data.get("optimizer")
        if value > 1 and optimizer is not None and optimizer.name == "sam":
            raise ValueError(
                "not supported with optimizer.name=sam: the ascent step needs the whole batch's gradient before the "
                "second pass; raise data.batch_size or add processes instead"
            )
        return value
