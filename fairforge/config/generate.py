"""Config of the generate stage (`generate:` in pipelines.yaml).

Every field has a default, so `GenerateConfig()` is valid; the model defaults are the tiny
random-weight models (`tiny:NAME` = `fairforge.tiny.ensure(NAME)`), so the embedded default runs
offline on a CPU, and the `full` preset names real models. Rules a single field cannot express (a
prompt template's placeholders, the pairing rule names) are checked here, at load time, with the key
path in the message; rules that need the taxonomy (cell keys, word lists covering every value) are
checked by the plan builder before any image is made.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import StrictModel

#: Placeholders a prompt template may use. `gender`/`race`/`age` are the cell's own names, the
#: `*_words` and the variety keys are sampled per image from the lists below.
PROMPT_PLACEHOLDERS: tuple[str, ...] = (
    "gender",
    "race",
    "age",
    "gender_words",
    "race_words",
    "age_words",
    "lighting",
    "expression",
    "background",
    "camera",
    "head_pose",
)
#: Pairing rules of the face swap: which cell the source identity comes from.
PAIRING_RULES: tuple[str, ...] = ("same_cell", "same_gender_other_race", "same_race_other_gender", "any_cell")


def method_names() -> list[str]:
    """The generators `generate.methods` may name: every registered one but the partner rows."""
    from fairforge.generate.methods import of_kind

    return of_kind("pristine", "fake")


def template_fields(template: str) -> list[str]:
    """The placeholder names of a `str.format` template (`{a} {b!r}` -> [a, b])."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def _check_template(template: str) -> str:
    try:
        fields = template_fields(template)
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc})") from None
    unknown = sorted({f for f in fields if f not in PROMPT_PLACEHOLDERS})
    if unknown or any(f == "" for f in fields):
        raise ValueError(f"unknown placeholder(s) {unknown or ['{}']}; expected some of {list(PROMPT_PLACEHOLDERS)}")
    return template


def _age_years(low: int, high: int) -> list[str]:
    return [f"{n}-year-old" for n in range(low, high + 1)]


DEFAULT_AGE_WORDS: dict[str, list[str]] = {
    "0-2": ["baby", "1-year-old", "2-year-old"],
    "3-9": _age_years(3, 9),
    "10-19": _age_years(10, 19),
    "20-29": _age_years(20, 29),
    "30-39": _age_years(30, 39),
    "40-49": _age_years(40, 49),
    "50-59": _age_years(50, 59),
    "60-69": _age_years(60, 69),
    "70+": _age_years(70, 85),
}
_CHILD = {"0-2", "3-9"}
_TEEN = {"10-19"}


def _gender_words(child: str, teen: str, adult: list[str]) -> dict[str, list[str]]:
    words = {"default": adult}
    words.update({age: [child] for age in _CHILD})
    words.update({age: [teen] for age in _TEEN})
    return words


class PromptConfig(StrictModel):
    """Prompt templates per cell and the word lists sampled into them, one draw per image."""

    template: str = Field(
        "{camera} portrait photo of a {age_words} {race_words} {gender_words}, {expression}, {head_pose}, "
        "{lighting}, {background}",
        description="str.format template; placeholders: " + ", ".join(PROMPT_PLACEHOLDERS),
    )
    cell_templates: dict[str, str] = Field(
        default_factory=dict,
        description="templates for some groups or cells, keyed `gender-race` or `gender-race-age`",
    )
    negative: str = (
        "cartoon, anime, illustration, painting, drawing, 3d render, cgi, deformed face, disfigured, blurry, "
        "low quality, text, watermark, logo, multiple people, sunglasses, face mask, hat covering the face"
    )
    gender_words: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: {
            "male": _gender_words("boy", "teenage boy", ["man"]),
            "female": _gender_words("girl", "teenage girl", ["woman"]),
        },
        description="gender -> age bin (or `default`) -> words",
    )
    race_words: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "Asian": ["East Asian", "Southeast Asian", "Chinese", "Japanese", "Korean", "Vietnamese", "Filipino"],
            "White": ["white", "European", "Caucasian"],
            "Black": ["Black", "African", "African American"],
            "Others": ["Indian", "Middle Eastern", "Latino", "Hispanic", "South Asian", "Arab"],
        },
        description="race -> words (FairFace's finer groups make the variety)",
    )
    age_words: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_AGE_WORDS))
    lighting: list[str] = [
        "soft natural light",
        "studio lighting",
        "overcast daylight",
        "warm indoor light",
        "golden hour light",
        "fluorescent office light",
    ]
    expression: list[str] = [
        "neutral expression",
        "slight smile",
        "smiling",
        "serious expression",
        "relaxed expression",
    ]
    background: list[str] = [
        "plain grey background",
        "white wall",
        "blurred city street",
        "blurred office",
        "blurred park",
        "home interior",
    ]
    camera: list[str] = ["a DSLR", "a smartphone", "a 50mm", "a close-up", "a passport-style", "a candid"]
    head_pose: list[str] = ["facing the camera", "head slightly turned", "looking slightly to the side"]

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        return _check_template(value)

    @field_validator("cell_templates")
    @classmethod
    def _cell_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            try:
                _check_template(template)
            except ValueError as exc:
                raise ValueError(f"[{key!r}]: {exc}") from None
        return value

    @field_validator("lighting", "expression", "background", "camera", "head_pose")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected a non-empty list of words")
        return value


class DiffusionConfig(StrictModel):
    """The text-to-image pipeline: `AutoPipelineForText2Image.from_pretrained(model)`."""

    model: str = Field("tiny:diffusion", description="hub id, local folder, or `tiny:diffusion`")
    revision: str | None = None
    variant: str | None = Field(None, description="weights variant, e.g. `fp16`")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on CUDA, float32 on CPU"
    )
    steps: int = Field(2, gt=0)
    guidance: float = Field(5.0, ge=0.0)
    width: int = Field(64, gt=0, description="generated image width (the crop size is `crop_size`)")
    height: int = Field(64, gt=0)
    batch_size: int = Field(4, gt=0, description="images per pipeline call; fixed in the plan (see plan.py)")
    scheduler: str | None = Field(None, description="a diffusers scheduler class name to swap in (null: the model's)")
    compile: bool = Field(False, description="torch.compile the denoiser (GPU runs)")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode when `compile` is on"
    )
    channels_last: bool = Field(False, description="denoiser and VAE in channels-last memory format (GPU runs)")
    black_threshold: float = Field(
        0.02, ge=0.0, lt=1.0, description="an image whose brightest value (0..1) is at most this is black: retried"
    )
    max_retries: int = Field(3, ge=0, description="new seeds tried for a black/NaN/faceless image")
    load_kwargs: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="extra from_pretrained keyword arguments (e.g. use_safetensors: true)"
    )


class InsightFaceConfig(StrictModel):
    """insightface's model pack (buffalo_l: SCRFD boxes, 5 keypoints, 68/106 landmarks, ArcFace)."""

    name: str = "buffalo_l"
    root: str = Field(
        "~/.insightface",
        description="the pack is read from ROOT/models/NAME; never downloaded (`tiny:insightface`: the tiny pack)",
    )
    sha256: dict[str, str] = Field(default_factory=dict, description="file name in the pack -> sha256, checked")
    det_size: int = Field(640, gt=0)
    det_thresh: float = Field(0.5, gt=0.0, lt=1.0)
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime providers of the detector and landmark models, in order; asking for CUDA and "
        "getting CPU is an error",
    )


class DlibConfig(StrictModel):
    """dlib's HOG face detector + the 68-point predictor of `face-recognition-models`."""

    upsample: int = Field(1, ge=0, description="times the image is upsampled before detection")
    predictor: str | None = Field(None, description="a 68-point .dat file (null: face-recognition-models' one)")


class DetectorConfig(StrictModel):
    backend: Literal["insightface", "dlib", "template"] = Field(
        "template", description="template: the images are already aligned crops (tiny preset)"
    )
    min_score: float = Field(0.0, description="faces scoring below this are not faces (backend's own scale)")
    insightface: InsightFaceConfig = InsightFaceConfig()
    dlib: DlibConfig = DlibConfig()


class AlignConfig(StrictModel):
    """Every image of every method goes through this alignment, crop and encoding."""

    crop_size: int = Field(256, ge=32, description="square crop side in pixels")
    geometry: Literal["deepfakebench", "mean_face"] = Field(
        "deepfakebench",
        description="deepfakebench: DeepfakeBench's dlib crop (the imported datasets' geometry); "
        "mean_face: the mean face at face_fraction / center_y",
    )
    face_fraction: float = Field(
        0.7, gt=0.1, le=1.0, description="mean_face only: width of the 68-landmark box / crop side"
    )
    center_y: float = Field(
        0.55, gt=0.0, lt=1.0, description="mean_face only: vertical centre of the landmark box / crop side"
    )
    image_format: Literal["png", "jpeg"] = "png"
    jpeg_quality: int = Field(95, ge=1, le=100)


class SBIConfig(StrictModel):
    """Self-blended images (Shiohara & Yamasaki, CVPR 2022); defaults are the paper's code."""

    subset_hull_prob: float = Field(
        0.25, ge=0.0, le=1.0, description="81-point landmarks: probability of using only the first 68"
    )
    hull_kinds: list[Literal["dfl_full", "extended", "components", "facehull"]] = Field(
        default_factory=lambda: ["dfl_full", "extended", "components", "facehull"],
        description="hull kinds drawn uniformly (the reference with the Face X-ray library); [facehull]: without it",
    )
    isotropic_scale: bool = Field(
        False, description="one affine scale for x and y (the reference draws them apart, as albumentations does)"
    )
    reference_scale: bool = Field(
        True,
        description="scale the mask's working size so blur kernels are the reference's relative to the face "
        "(it blends on a wider margin crop)",
    )
    rgb_shift: float = 20.0
    rgb_shift_p: float = Field(0.3, ge=0.0, le=1.0)
    hue_shift: float = Field(0.3, description="HSV limits in the reference code's uint8 units")
    sat_shift: float = 0.3
    val_shift: float = 0.3
    brightness: float = 0.1
    contrast: float = 0.1
    downscale_ratios: list[int] = [2, 4]
    sharpen_alpha: tuple[float, float] = (0.2, 0.5)
    sharpen_lightness: tuple[float, float] = (0.5, 1.0)
    translate_x: float = 0.03
    translate_y: float = 0.015
    scale: tuple[float, float] = (0.95, 1 / 0.95)
    elastic_alpha: float = 50.0
    elastic_sigma: float = 7.0
    blend_ratios: list[float] = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]

    @field_validator("hull_kinds")
    @classmethod
    def _hull_kinds(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected at least one hull kind")
        return value

    @field_validator("blend_ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        if not value or any(not 0.0 < r <= 1.0 for r in value):
            raise ValueError(f"expected a non-empty list of ratios in (0, 1], got {value}")
        return value


class InswapperConfig(StrictModel):
    """inswapper_128 face swaps; the model file is the user's (never downloaded)."""

    model: str = Field("tiny:inswapper", description="path to inswapper_128.onnx, or `tiny:inswapper`")
    sha256: str | None = Field(None, description="pinned sha256 of the model file, checked before work")
    recognition: str | None = Field(
        "tiny:arcface", description="ArcFace ONNX for source embeddings (null: the insightface pack's)"
    )
    recognition_sha256: str | None = None
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime providers in order; asking for CUDA and getting CPU is an error",
    )
    pairing: dict[str, int] = Field(
        default_factory=lambda: {"same_cell": 1, "same_gender_other_race": 1, "any_cell": 1},
        description="pairing rule -> weight: swaps are split across rules by weight, cells round-robin",
    )

    @field_validator("pairing")
    @classmethod
    def _pairing(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(PAIRING_RULES))
        if unknown:
            raise ValueError(f"unknown pairing rule(s) {unknown}; expected some of {list(PAIRING_RULES)}")
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError(f"weights must be >= 0 with at least one > 0, got {value}")
        return value


class PoolConfig(StrictModel):
    """Where swaps and blends take their pristine faces from."""

    source: Literal["diffusion", "manifest"] = Field(
        "diffusion", description="diffusion: this run's faces; manifest: real faces of an imported manifest"
    )
    manifest: str | None = Field(None, description="the manifest (file or folder) when source is `manifest`")


class GenerateConfig(StrictModel):
    """The synthetic set: which cells, how many images per cell and method, and how each is made."""

    methods: list[str] = Field(default_factory=lambda: ["diffusion", "sbi", "inswapper"])
    count_per_cell: int = Field(2, ge=0, description="images per cell and method")
    ages: list[str] | None = Field(None, description="only these age bins (null: the taxonomy's)")
    with_age: bool = Field(True, description="false: cells are gender x race with age `unknown`")
    cells: list[str] | None = Field(None, description="only these cells/groups (`gender-race[-age]`)")
    diffusion_label: Literal["real", "fake"] = Field(
        "real", description="real: diffusion faces are the pristine pool; fake: whole-face synthesis"
    )
    num_threads: int | None = Field(
        None, gt=0, description="torch CPU threads per process; CPU bytes depend on it, so pin it to compare runs"
    )
    flush_every: int = Field(64, gt=0, description="manifest rows per shard file")
    prompt: PromptConfig = PromptConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    detector: DetectorConfig = DetectorConfig()
    align: AlignConfig = AlignConfig()
    sbi: SBIConfig = SBIConfig()
    inswapper: InswapperConfig = InswapperConfig()
    pool: PoolConfig = PoolConfig()
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="generator name -> its settings (generators without a section above)"
    )

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        names = method_names()
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; expected some of {names}")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate methods in {value}")
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from fairforge.generate.methods import GENERATORS

        for name, section in value.items():
            if name not in GENERATORS:
                raise ValueError(f"[{name!r}]: unknown generator; expected one of {GENERATORS.names()}")
            model = GENERATORS.get(name).Config
            if model is None:
                raise ValueError(f"[{name!r}]: generator {name!r} takes no options")
            try:
                model.model_validate(section)
            except ValueError as exc:
                raise ValueError(f"[{name!r}]: {exc}") from None
        return value

    @model_validator(mode="after")
    def _pool(self) -> GenerateConfig:
        if self.pool.source == "manifest" and not self.pool.manifest:
            raise ValueError("pool.manifest: required when pool.source is `manifest`")
        return self
