"""Classifier backends, one loader per checkpoint format, in a registry keyed by `backend:`.

Each loader reads the files the user points at through the library's own loading code (the one
real weights take) and says which logit carries which label name; `classifier.LabelMap` does the
rest. No loader runs remote code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fairforge.config.balance import ClassifierConfig
from fairforge.errors import ConfigError, MissingModelError
from fairforge.registry import Registry
from fairforge.taxonomy import AGE_BINS, FAIRFACE_GENDERS, FAIRFACE_RACES, Taxonomy

from .classifier import AttributeClassifier, Head, parse_heads
from .models import resolve_model

Loader = Callable[[ClassifierConfig, str, Taxonomy], AttributeClassifier]
BACKENDS: Registry[Loader] = Registry("classifier backend")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FAIRFACE_URL = "https://github.com/dchen236/FairFace (res34_fair_align_multi_7_20190809.pt)"


def register_backend(name: str) -> Callable[[Loader], Loader]:
    """`@register_backend("name")`: a loader for `backend: name` (a duplicate name is refused)."""
    return BACKENDS.register(name)


def load_classifier(cfg: ClassifierConfig, key: str, taxonomy: Taxonomy) -> AttributeClassifier:
    """Load the classifier `cfg` describes; `key` (e.g. `balance.classifiers[0]`) names it in errors."""
    return BACKENDS.get(cfg.backend, key=f"{key}.backend")(cfg, key, taxonomy)


# ------------------------------------------------------------------------------------------------
# FairFace: a torchvision ResNet state dict with 18 logits (race 0-6, gender 7-8, age 9-17)
# ------------------------------------------------------------------------------------------------
FAIRFACE_HEADS = (
    Head("race", tuple(range(0, 7)), FAIRFACE_RACES),
    Head("gender", (7, 8), FAIRFACE_GENDERS),
    Head("age", tuple(range(9, 18)), AGE_BINS),
)
#: The 4-race checkpoint (`fairface_alldata_4race_20191111.pt`): the same 18 logits, of which the
#: first 4 are its races (FairFace's `predict.py` reads `outputs[:4]`); 4-6 are unused.
FAIRFACE_4_RACES = ("White", "Black", "Asian", "Indian")


def fairface_heads(races: int) -> tuple[Head, ...]:
    """The heads of a FairFace checkpoint with `races` (7 or 4) race logits, labels by name."""
    if races == 7:
        return FAIRFACE_HEADS
    return (Head("race", tuple(range(0, 4)), FAIRFACE_4_RACES), *FAIRFACE_HEADS[1:])


@register_backend("fairface")
def load_fairface(cfg: ClassifierConfig, key: str, taxonomy: Taxonomy) -> AttributeClassifier:
    import torch
    import torchvision
    from torchvision import transforms

    path = resolve_model(cfg.path, f"{key}.path", hint=f"download it from {FAIRFACE_URL}")
    builder = getattr(torchvision.models, cfg.arch, None)
    if builder is None or not callable(builder):
        raise ConfigError(f"{key}.arch: {cfg.arch!r} is not a torchvision model (FairFace: resnet34)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{key}.path: {path} holds a {type(state).__name__}, not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = builder(weights=None, num_classes=18)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {path} is not a FairFace {cfg.arch} state dict with 18 logits ({first})") from None
    transform = transforms.Compose(
        [
            transforms.Resize((cfg.image_size, cfg.image_size)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    heads = [h for h in fairface_heads(cfg.races) if cfg.attributes is None or h.attribute in cfg.attributes]
    info = {
        "backend": "fairface",
        "path": cfg.path,
        "arch": cfg.arch,
        "races": cfg.races,
        "align": "dlib-chip-300-0.25",
    }
    clf = AttributeClassifier(f"fairface:{cfg.arch}:{cfg.races}-race", model, transform, heads, taxonomy, info=info)
    clf.align = fairface_chip
    return clf


def fairface_chip(rgb: Any, landmarks: Any) -> Any:
    """FairFace's reference input: dlib's face chip (`get_face_chip(size=300, padding=0.25)`) as PIL.

    FairFace's `predict.py` aligns with dlib's 5-point shape; dlib maps a 68-point shape onto the
    same chip template, so the stored 68 landmarks give the chip it was trained on (the transform
    then resizes it to 224).
    """
    import dlib
    import numpy as np
    from PIL import Image

    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    lo, hi = pts.min(0), pts.max(0)
    rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(np.ceil(hi[0])), int(np.ceil(hi[1])))
    shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    chip = dlib.get_face_chip(np.ascontiguousarray(rgb, dtype=np.uint8), shape, size=300, padding=0.25)
    return Image.fromarray(np.asarray(chip))


# ------------------------------------------------------------------------------------------------
# timm: any timm model (local-dir:, hf-hub: or a name) with label names in logit order
# ------------------------------------------------------------------------------------------------
@register_backend("timm")
def load_timm(cfg: ClassifierConfig, key: str, taxonomy: Taxonomy) -> AttributeClassifier:
    import timm
    from timm.data import create_transform, resolve_data_config

    name = resolve_model(cfg.path, f"{key}.path", must_exist=False)
    if not name.startswith(("local-dir:", "hf-hub:")) and Path(name).is_dir():
        name = "local-dir:" + name
    try:
        model = timm.create_model(name, pretrained=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise MissingModelError(f"{key}.path: timm could not load {cfg.path!r} ({exc})") from None
    labels = cfg.labels or model.pretrained_cfg.get("label_names")
    if not labels:
        raise ConfigError(f"{key}.labels: {cfg.path} has no label_names in its config; list them in logit order")
    labels = list(labels.values()) if isinstance(labels, dict) else list(labels)
    if len(labels) != model.num_classes:
        raise ConfigError(f"{key}.labels: {len(labels)} names for a model with {model.num_classes} outputs")
    heads = parse_heads(labels, cfg.attribute, f"{key}.labels", cfg.attributes)
    transform = create_transform(**resolve_data_config({}, model=model))
    info = {"backend": "timm", "path": cfg.path, "arch": model.pretrained_cfg.get("architecture")}
    return AttributeClassifier(f"timm:{cfg.path}", model, transform, heads, taxonomy, info=info)


# ------------------------------------------------------------------------------------------------
# transformers: AutoModelForImageClassification + id2label, never remote code
# ------------------------------------------------------------------------------------------------
@register_backend("transformers")
def load_transformers(cfg: ClassifierConfig, key: str, taxonomy: Taxonomy) -> AttributeClassifier:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    name = resolve_model(cfg.path, f"{key}.path", must_exist=False)
    try:
        model = AutoModelForImageClassification.from_pretrained(name, trust_remote_code=False)
        processor = AutoImageProcessor.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise MissingModelError(f"{key}.path: transformers could not load {cfg.path!r} ({exc})") from None
    id2label = model.config.id2label
    labels = [id2label[i] for i in range(model.config.num_labels)]
    heads = parse_heads(labels, cfg.attribute, f"{key}.attribute", cfg.attributes)

    def transform(image: Any) -> Any:
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    info = {"backend": "transformers", "path": cfg.path, "arch": type(model).__name__}
    return AttributeClassifier(
        f"transformers:{cfg.path}", model, transform, heads, taxonomy, logits_of=lambda out: out.logits, info=info
    )
