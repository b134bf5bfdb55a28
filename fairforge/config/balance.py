"""Config of the balance and release stages (`balance:` and `release:` in pipelines.yaml).

Every field has a default so `PipelineConfig()` validates; the defaults are the full-size
settings, the `tiny` preset relaxes what a random-weight classifier cannot pass (see pipelines.yaml).
Model paths accept `tiny:NAME` (a model from `fairforge.tiny.ensure(NAME)`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from .base import StrictModel

ATTRIBUTES = ("gender", "race", "age")


class ClassifierConfig(StrictModel):
    """One attribute classifier. Several may be listed (e.g. one hub model per attribute)."""

    backend: Literal["fairface", "timm", "transformers"] = "fairface"
    #: FairFace: the state-dict file; timm: a `local-dir:` folder, `hf-hub:` id or timm name;
    #: transformers: a folder or hub id. `tiny:NAME` for the tiny models. Required when balance runs.
    path: str | None = None
    #: FairFace only: the torchvision architecture of the state dict (real FairFace: resnet34).
    arch: str = "resnet34"
    #: FairFace only: input size (FairFace was trained at 224 with ImageNet normalization).
    image_size: int = Field(224, gt=0)
    #: FairFace only: the checkpoint's race layout: 7 (`res34_fair_align_multi_7`: White, Black,
    #: Latino_Hispanic, East Asian, Southeast Asian, Indian, Middle Eastern) or 4
    #: (`fairface_alldata_4race`: White, Black, Asian, Indian; the same 18 logits). Mapped by name.
    races: Literal[7, 4] = 7
    #: Label names in logit order (timm; overrides the model's `label_names`). A name is
    #: `attribute:label` (e.g. `race:East Asian`) or a bare label of `attribute` below.
    labels: list[str] | None = None
    #: The attribute bare label names belong to (a single-attribute hub classifier).
    attribute: Literal["gender", "race", "age"] | None = None
    #: Only use these attributes of this classifier (default: every attribute it predicts).
    attributes: list[Literal["gender", "race", "age"]] | None = None


class VerifyConfig(StrictModel):
    """Keep an image only when the predicted cell equals the intended one, confidently."""

    #: Attributes that must match the intended ones (the tiny preset's random classifier matches none).
    match: list[Literal["gender", "race", "age"]] = ["gender", "race", "age"]
    #: Minimum confidence per attribute (an attribute not listed has no minimum).
    tau: dict[str, float] = {"gender": 0.8, "race": 0.6, "age": 0.3}
    #: Age bins the prediction may be away from the intended bin (FairFace's age head is coarse).
    age_tolerance: int = Field(1, ge=0)

    @field_validator("tau")
    @classmethod
    def _tau_attributes(cls, value: dict[str, float]) -> dict[str, float]:
        for key, tau in value.items():
            if key not in ATTRIBUTES:
                raise ValueError(f"tau.{key}: unknown attribute; expected some of {list(ATTRIBUTES)}")
            if not 0.0 <= tau <= 1.0:
                raise ValueError(f"tau.{key}: expected a probability in [0, 1], got {tau}")
        return value


class FaceConfig(StrictModel):
    """No face / low detector score."""

    #: `manifest`: the `face_score` generate wrote (a row without one has no face); `dlib`: run
    #: dlib's HOG detector (score = its SVM margin); `none`: no face check.
    detector: Literal["manifest", "dlib", "none"] = "manifest"
    min_score: float = 0.5
    #: dlib only: times the image is upsampled before detection (HOG finds faces >= ~80 px).
    upsample: int = Field(1, ge=0)


class SharpnessConfig(StrictModel):
    """Too blurry: variance of the Laplacian of the grey image resized to `size` x `size`.

    Resizing first makes one threshold mean the same at every crop size.
    """

    size: int = Field(256, gt=0)
    min: float = 20.0


class DedupConfig(StrictModel):
    """Exact (sha256) and near (perceptual hash, Hamming distance) duplicates; the first row wins."""

    enabled: bool = True
    hash_size: int = Field(8, ge=4)
    max_hamming: int = Field(4, ge=0)
    #: Rows are compared only with rows that agree on these columns: an SBI fake is meant to be
    #: a near copy of its real source, so by default fakes and reals are not compared.
    scope: list[str] = ["label", "method"]


class IdentityConfig(StrictModel):
    """Same identity: face-embedding cosine above `threshold` (only when `model` is set)."""

    #: An insightface recognition ONNX (e.g. buffalo_l's w600k_r50.onnx, or `tiny:arcface`).
    model: str | None = None
    threshold: float = Field(0.6, ge=-1.0, le=1.0)
    #: Only these methods are checked (the pristine pool: swaps keep their source's identity on purpose).
    methods: list[str] = ["diffusion"]
    scope: list[str] = ["label", "method"]
    providers: list[str] = ["CPUExecutionProvider"]


class LoopConfig(StrictModel):
    """The closed loop: generate -> verify -> top up deficits -> verify, until full or `max_rounds`."""

    until_full: bool = False
    max_rounds: int = Field(3, ge=0)


class MixConfig(StrictModel):
    """Real rows per synthetic row in the final set (None: every real row given)."""

    real_ratio: float | None = Field(1.0, ge=0.0)


class SplitConfig(StrictModel):
    """Person-disjoint train/validation/test fractions, stratified by cell, source and label.

    generate splits the people when it plans (each pristine face its split; every swap and blend
    takes target and source from one split), so these fractions are read by generate and balance
    alike. Real datasets keep their official splits unless `keep_existing` is false.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    train: float = Field(0.8, ge=0.0)
    #: also read as `val`
    validation: float = Field(0.1, ge=0.0, validation_alias=AliasChoices("validation", "val"))
    test: float = Field(0.1, ge=0.0)
    #: Keep the split a real manifest already gives (FF++'s, Celeb-DF's official lists); false
    #: re-splits every real dataset by person (every row of a person, and every fake made from
    #: them, in one split), stratified like the synthetic rows.
    keep_existing: bool = True

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, got {total}")
        return self


class ReportConfig(StrictModel):
    contact_per_cell: int = Field(16, ge=1)
    contact_thumb: int = Field(96, gt=8)


class AuditConfig(StrictModel):
    """`fairforge audit`: what a detector could learn from the set besides the manipulation."""

    #: Run the audit at the end of `fairforge balance` (its table goes into the report and card).
    enabled: bool = True
    #: A probe (fakes vs their partners, or synthetic vs an imported source) above this AUC is flagged.
    max_auc: float = Field(0.6, gt=0.5, le=1.0)
    #: Mean fraction of pixels outside the face that may differ between a fake and its partner.
    max_changed_fraction: float = Field(0.01, ge=0.0, le=1.0)
    #: A pixel counts as changed when a channel differs by more than this (compression noise below).
    change_level: int = Field(8, ge=0, le=255)
    #: The landmark hull is dilated by this fraction of the crop side before "outside" begins.
    dilate: float = Field(0.12, ge=0.0, le=0.5)
    #: Without landmarks, "outside" is the top and side bands of this fraction of the crop.
    band: float = Field(0.1, gt=0.0, lt=0.5)
    folds: int = Field(5, ge=2)
    bootstrap: int = Field(200, ge=10)
    #: At most this many images per side of a probe (sampled with `seed`); 0: all.
    max_per_probe: int = Field(2000, ge=0)
    seed: int = 0
    #: `fairforge balance` exits with an error when a threshold is exceeded.
    strict: bool = False


class BalanceConfig(StrictModel):
    """`fairforge balance`: verify, filter, cap per cell, deficits, closed loop, mix, split."""

    classifiers: list[ClassifierConfig] = [ClassifierConfig()]
    verify: VerifyConfig = VerifyConfig()
    face: FaceConfig = FaceConfig()
    min_size: int = Field(64, ge=1)
    sharpness: SharpnessConfig = SharpnessConfig()
    dedup: DedupConfig = DedupConfig()
    identity: IdentityConfig = IdentityConfig()
    #: Images kept per cell (gender x race [x age]), split over methods by `method_mix`.
    target_per_cell: int = Field(100, ge=1)
    #: Relative share of each method in a cell (normalized; largest remainder rounding).
    method_mix: dict[str, float] = {"diffusion": 0.5, "sbi": 0.25, "inswapper": 0.25}
    #: Whether cells include the age bin (generate's plan does by default).
    with_age: bool = True
    #: Restrict the target to these cells (`gender-race-age`, or `gender-race` for all its ages).
    #: None: the cells `generate.cells` names (every cell when that is None too).
    cells: list[str] | None = None
    #: Only these age bins (None: `generate.ages`, else every bin of the taxonomy).
    ages: list[str] | None = None
    loop: LoopConfig = LoopConfig()
    mix: MixConfig = MixConfig()
    split: SplitConfig = SplitConfig()
    #: How images enter DIR/images: hard links (fallback copy), copies, or symlinks.
    link: Literal["hardlink", "copy", "symlink"] = "hardlink"
    batch_size: int = Field(64, ge=1)
    num_workers: int = Field(2, ge=0)
    #: `auto`: CUDA when there is one.
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    report: ReportConfig = ReportConfig()
    audit: AuditConfig = AuditConfig()

    @field_validator("method_mix")
    @classmethod
    def _positive_mix(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError(f"expected non-negative weights with a positive sum, got {value}")
        return value


class LicenseConfig(StrictModel):
    """Licence of one model or dataset the release was made with."""

    license: str
    non_commercial: bool = False
    url: str | None = None


class ReleaseConfig(StrictModel):
    """`fairforge release`: DatasetDict, Hub-layout Parquet shards, dataset card, optional push."""

    pretty_name: str = "fairforge synthetic faces"
    #: The dataset's licence; `auto`: cc-by-nc-4.0 when any component is non-commercial or unknown.
    license: str = "auto"
    max_shard_size: str = "500MB"
    row_group_size: int = Field(100, ge=1)
    #: Files per commit when pushing (each commit is a resume point).
    commit_every: int = Field(50, ge=1)
    repo_id: str | None = None
    private: bool = False
    #: Extra or overriding licence entries, keyed by a substring of the generator/model name.
    licenses: dict[str, LicenseConfig] = {}
    #: Write the `save_to_disk` copy under RELEASE_DIR/arrow (not pushed).
    save_to_disk: bool = True
    #: Also put imported real rows (FF++, Celeb-DF, ...) in the shards. Off by default: their
    #: licences rarely allow redistribution; they are listed in references/real.parquet instead.
    include_real: bool = False
