"""Each classifier backend loads files the test writes, through the real loading code, and maps
its labels onto the taxonomy by NAME (never by index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_balance_lib import face_like, fairface_state

from fairforge.balance.backends import load_classifier
from fairforge.balance.classifier import AttributeClassifier, parse_heads
from fairforge.config.balance import ClassifierConfig
from fairforge.errors import ConfigError
from fairforge.taxonomy import DEFAULT_TAXONOMY

IMAGES = [Image.fromarray(face_like(s, 64)) for s in range(3)]


def predict(clf: AttributeClassifier, images: list[Image.Image] = IMAGES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return clf.predict(torch.stack([clf.transform(im) for im in images]))


def test_fairface_state_dict_loads_and_maps_by_name(tmp_path):
    # White alone outscores East Asian and Southeast Asian each, but they are both "Asian" by name:
    # p(White) = .38, p(Asian) = .62. Female and 70+ sit at FairFace's indices 8 and 17.
    state = fairface_state(
        race={"White": 1.0, "East Asian": 0.8, "Southeast Asian": 0.8}, gender={"Female": 4.0}, age={"70+": 4.0}
    )
    path = tmp_path / "fairface.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # the DataParallel form
    clf = load_classifier(ClassifierConfig(backend="fairface", path=str(path), arch="resnet18"), "c", DEFAULT_TAXONOMY)
    out = predict(clf)
    assert list(out["race"][0]) == ["Asian"] * 3
    np.testing.assert_allclose(out["race"][1], 2 * np.exp(0.8) / (np.exp(1.0) + 2 * np.exp(0.8)), rtol=1e-4)
    assert list(out["gender"][0]) == ["female"] * 3 and list(out["age"][0]) == ["70+"] * 3
    assert clf.transform(IMAGES[0]).shape == (3, 224, 224)


def test_fairface_tiny_model_and_wrong_arch(tiny_cache):
    clf = load_classifier(
        ClassifierConfig(path="tiny:fairface", arch="resnet18"), "balance.classifiers[0]", DEFAULT_TAXONOMY
    )
    out = predict(clf)
    assert set(out) == {"race", "gender", "age"}
    assert all(((c > 0) & (c <= 1)).all() for _, c in out.values())
    with pytest.raises(ConfigError, match=r"balance.classifiers\[0\]: .* is not a FairFace resnet34 state dict"):
        load_classifier(ClassifierConfig(path="tiny:fairface"), "balance.classifiers[0]", DEFAULT_TAXONOMY)


def test_missing_fairface_file_names_the_key():
    from fairforge.errors import MissingModelError

    with pytest.raises(MissingModelError, match=r"balance.classifiers\[1\].path: no model configured; download"):
        load_classifier(ClassifierConfig(), "balance.classifiers[1]", DEFAULT_TAXONOMY)


def _timm_model(folder: Path, labels: list[str], favour: set[int]) -> None:
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=len(labels))
    with torch.no_grad():
        model.get_classifier().weight.zero_()
        model.get_classifier().bias.copy_(torch.tensor([5.0 if i in favour else 0.0 for i in range(len(labels))]))
    save_for_hf(model, folder, model_config={"label_names": labels}, safe_serialization=True)


def test_timm_model_with_label_names_loads_and_maps_by_name(tmp_path):
    labels = ["gender:Woman", "gender:Man", "race:Black", "race:white", "race:Indian"]
    _timm_model(tmp_path / "timm", labels, favour={1, 4})
    clf = load_classifier(ClassifierConfig(backend="timm", path=str(tmp_path / "timm")), "c", DEFAULT_TAXONOMY)
    out = predict(clf)
    assert list(out["gender"][0]) == ["male"] * 3  # "Man" at index 1; the taxonomy's index 1 is female
    assert list(out["race"][0]) == ["Others"] * 3  # Indian -> Others by FairFace's race map
    # the config's labels override the model's (a single-attribute head with bare names)
    cfg = ClassifierConfig(
        backend="timm", path=str(tmp_path / "timm"), labels=["a", "b", "c", "d", "Female"], attribute="gender"
    )
    assert list(predict(load_classifier(cfg, "c", DEFAULT_TAXONOMY))["gender"][0]) == ["unknown"] * 3


def test_transformers_model_maps_id2label_by_name(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        num_labels=2,
        id2label={0: "Female", 1: "Male"},  # the reverse of the taxonomy's order
        label2id={"Female": 0, "Male": 1},
    )
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([3.0, 0.0]))
    model.save_pretrained(tmp_path / "hf")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "hf")
    cfg = ClassifierConfig(backend="transformers", path=str(tmp_path / "hf"), attribute="gender")
    clf = load_classifier(cfg, "c", DEFAULT_TAXONOMY)
    values, conf = predict(clf)["gender"]
    assert list(values) == ["female"] * 3
    np.testing.assert_allclose(conf, 1 / (1 + np.exp(-3.0)), rtol=1e-4)
    with pytest.raises(ConfigError, match="c.attribute: label 0 'Female' names no attribute"):
        load_classifier(ClassifierConfig(backend="transformers", path=str(tmp_path / "hf")), "c", DEFAULT_TAXONOMY)


def test_parse_heads_groups_prefixed_labels():
    heads = parse_heads(["race:White", "gender:male", "race:Black"], None, "k")
    assert [(h.attribute, h.indices, h.labels) for h in heads] == [
        ("race", (0, 2), ("White", "Black")),
        ("gender", (1,), ("male",)),
    ]
    assert [h.attribute for h in parse_heads(["race:White", "gender:male"], None, "k", only=["gender"])] == ["gender"]


def test_fairface_4_race_checkpoint_maps_its_races_by_name(tmp_path):
    import torch
    import torchvision

    from fairforge.config.balance import ClassifierConfig
    from fairforge.taxonomy import Taxonomy

    path = tmp_path / "fairface_alldata_4race_20191111.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet34(weights=None, num_classes=18).state_dict(), path)
    clf = load_classifier(ClassifierConfig(path=str(path), races=4), "balance.classifiers[0]", Taxonomy())
    race = next(h for h in clf.label_map.heads if h.attribute == "race")
    assert race.indices == (0, 1, 2, 3) and race.labels == ("White", "Black", "Asian", "Indian")
    assert clf.info["races"] == 4 and "4-race" in clf.name
    logits = torch.full((1, 18), -20.0)
    logits[0, 2] = 20.0  # "Asian" of the 4-race layout; logit 2 is Latino_Hispanic in the 7-race one
    assert clf.label_map(logits)["race"][0][0] == "Asian"
    seven = load_classifier(ClassifierConfig(path=str(path)), "balance.classifiers[0]", Taxonomy())
    assert seven.label_map(logits)["race"][0][0] == "Others"


def test_an_unmapped_label_of_a_matched_head_is_an_error_naming_it():
    import torch

    from fairforge.balance.classifier import Head, LabelMap
    from fairforge.errors import ConfigError
    from fairforge.taxonomy import Taxonomy

    label_map = LabelMap(
        [Head("race", (0, 1), ("Caucasian", "Black")), Head("gender", (2, 3), ("Men", "female"))], Taxonomy()
    )
    assert label_map.unmapped == {"race": ["Caucasian"], "gender": ["Men"]}
    with pytest.raises(ConfigError, match=r"balance.classifiers\[0\]: race label\(s\) \['Caucasian'\].*'White'"):
        label_map.require(["race"], "balance.classifiers[0]")
    label_map.require([], "balance.classifiers[0]")  # not matched on: a warning only
    assert label_map(torch.zeros(1, 4))["race"][0].shape == (1,)


def test_backend_registry_refuses_unknown_and_duplicate_names():
    from fairforge.balance.backends import BACKENDS, register_backend
    from fairforge.config.balance import ClassifierConfig
    from fairforge.errors import ConfigError
    from fairforge.taxonomy import Taxonomy

    assert {"fairface", "timm", "transformers"} <= set(BACKENDS.names())
    with pytest.raises(ValueError, match="registered twice"):
        register_backend("fairface")(lambda cfg, key, taxonomy: None)
    cfg = ClassifierConfig.model_construct(backend="onnx", path="x")
    with pytest.raises(ConfigError, match=r"balance.classifiers\[1\].backend: unknown classifier backend 'onnx'"):
        load_classifier(cfg, "balance.classifiers[1]", Taxonomy())
