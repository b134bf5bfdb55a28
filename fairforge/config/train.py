"""Config of the train stage (`train:` in pipelines.yaml, or a file under train/configs/).

Every field has a default, so `TrainConfig()` is a valid config (the `ddfg` method) and a YAML file
only states what differs. The methods' own sections (`pg_fdd:`, `roga:`, ...) are not fields of
this file: each method registers its settings model beside its code (train/methods/<name>_config.py,
torch-free), and `TrainConfig` validates the `<name>:` section of every registered method with it. Cross-field rules that a single field cannot express (SAM with
gradient accumulation, a fairness bound without a metric) are checked here, at load time, with the
key path in the message, so a bad combination fails before any model is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails

from .base import StrictModel
from .taxonomy import TaxonomyConfig


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

    train: list[str] = Field(
        default_factory=list, description="training data: manifests (files or folders), release folders or Hub ids"
    )
    val: list[str] = Field(
        default_factory=list, description="validation data (same kinds); empty: the `val_split` rows of data.train"
    )
    train_split: str | None = Field("train", description="use only rows with this `split` (null: every row)")
    val_split: str | None = Field(
        "validation",
        description="validation rows: this split of data.val (or of data.train when data.val is empty); `val` also read",
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
        None, description="the update rule (train/updates/); null: `sam` when name is sam, else `plain`"
    )
    # efficient SAM: a full SAM ascent every `every` updates, reused in between
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
        """`every` > 1 or LookSAM reuse and no explicit rule: the efficient SAM rule (train/updates/efficient_sam.py).

        Judged on the values, not on which keys are present: a dumped and reloaded config carries
        every key with its default, and must come back with the rule it was saved with.
        """
        wants_efficient = (
            data.get("every", 1) != 1 or data.get("reuse", "perturbation") != "perturbation"
            if isinstance(data, dict)
            else False
        )
        if isinstance(data, dict) and data.get("update") is None and wants_efficient:
            return {**data, "update": "efficient_sam"}
        return data


class SchedulerConfig(StrictModel):
    name: Literal["constant", "linear", "cosine", "step"] = Field(
        "constant", description="step: the LR times `gamma` every `step_epochs` epochs (torch's StepLR per epoch)"
    )
    warmup_steps: int = Field(0, ge=0)
    step_epochs: int = Field(60, gt=0, description="step: epochs between decays")
    gamma: float = Field(0.9, gt=0.0, le=1.0, description="step: the LR factor at each decay")


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


def _method_configs() -> Any:
    from fairforge.train.methods import METHOD_CONFIGS

    return METHOD_CONFIGS


class TrainConfig(StrictModel):
    """A training run: data, model, method, optimizer, and the loop's bookkeeping.

    Besides the fields below, one section per registered method (`cfg.pg_fdd`, `cfg.roga`, ...),
    each validated by that method's settings model, defaults filled in; any other key is unknown.
    """

    # the methods' sections are kept as pydantic "extra" attributes, each one validated below
    model_config = ConfigDict(extra="allow", validate_assignment=True, protected_namespaces=())

    method: str = Field("ddfg", description="a registered method (train/methods/): erm, ddfg, pg_fdd, ...")
    seed: int = 0
    output_dir: str = "runs/train"
    taxonomy: TaxonomyConfig = Field(
        TaxonomyConfig(), description="the groups of the demographic heads and of validation (the pipeline's)"
    )
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

    @model_validator(mode="before")
    @classmethod
    def _method_sections(cls, data: Any) -> Any:
        """Validate each method's section with its registered model; refuse unknown keys and methods."""
        if not isinstance(data, dict):
            return data
        configs = _method_configs()
        data = dict(data)
        errors: list[InitErrorDetails] = []
        method = data.get("method", "ddfg")
        if isinstance(method, str) and method not in configs:
            errors.append(_error(("method",), f"unknown method {method!r}; expected one of {configs.names()}", method))
        for key in [k for k in data if k not in cls.model_fields and k not in configs]:
            errors.append(InitErrorDetails(type="extra_forbidden", loc=(key,), input=data[key]))
        for name, model in configs.items():
            section = data.get(name, {})
            if isinstance(section, model):
                continue
            try:
                data[name] = model.model_validate({} if section is None else section)
            except ValidationError as exc:
                errors.extend(
                    InitErrorDetails(type=e["type"], loc=(name, *e["loc"]), input=e["input"], ctx=e.get("ctx", {}))
                    for e in exc.errors()
                )
            if not model.model_fields:
                data.pop(name, None)  # a method without settings: nothing to record
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


def _error(loc: tuple[str, ...], message: str, value: Any) -> InitErrorDetails:
    from pydantic_core import PydanticCustomError

    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
