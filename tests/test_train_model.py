"""Backbone loading (timm names, local safetensors, local-dir, tiny) and the multi-task detector."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from fairforge.config.train import ModelConfig
from fairforge.errors import ConfigError, MissingModelError
from fairforge.train.backbones import create_backbone
from fairforge.train.detector import MultiTaskDetector
from fairforge.train.methods import available_methods, get_method


def _batch(n: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "image": torch.randn(n, 3, size, size),
        "label": torch.tensor([0, 1, 0, 1])[:n],
        "gender": torch.tensor([0, 1, -1, 1])[:n],
        "race": torch.tensor([0, 1, 2, 3])[:n],
        "group": torch.tensor([-1, -1, -1, -1])[:n],
    }


def test_local_safetensors_weights_are_loaded(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = timm.create_model("test_resnet", num_classes=3)
    file = tmp_path / "weights.safetensors"
    save_file(source.state_dict(), str(file))
    backbone = create_backbone(ModelConfig(backbone="test_resnet", pretrained=str(file)))
    loaded = backbone.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.state_dict().items() if not k.startswith("fc."))
    assert backbone.num_features == source.num_features and not hasattr(backbone.fc, "weight")


def test_tiny_backbone_loads_through_local_dir(tiny_cache) -> None:
    from fairforge.tiny import ensure

    backbone = create_backbone(ModelConfig(backbone="tiny"))
    same = create_backbone(ModelConfig(backbone="local-dir:" + str(ensure("timm")), pretrained=True))
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in backbone.state_dict().items())


def test_backbone_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.backbone: 'resnet_nope' is neither"):
        create_backbone(ModelConfig(backbone="resnet_nope"))
    with pytest.raises(MissingModelError, match="model.pretrained: weights file .*absent.safetensors does not exist"):
        create_backbone(ModelConfig(backbone="test_resnet", pretrained=str(tmp_path / "absent.safetensors")))
    with pytest.raises(MissingModelError, match="model.backbone: folder .* does not exist"):
        create_backbone(ModelConfig(backbone="local-dir:" + str(tmp_path / "nothing")))
    with pytest.raises(MissingModelError, match="model.pretrained: could not load weights"):  # HF_HUB_OFFLINE=1
        create_backbone(ModelConfig(backbone="test_resnet", pretrained="timm/not-a-real-repo"))


def test_detector_is_dict_in_dict_out_with_named_losses() -> None:
    cfg = ModelConfig(backbone="test_resnet", heads={"cls": 1.0, "gender": 0.5, "race": 0.0, "group": 0.2})
    model = MultiTaskDetector.from_config(cfg, 2, 4, 8)
    batch = _batch()
    out = model(batch)
    assert out["logits"].shape == (4,) and out["gender"].shape == (4, 2) and out["group"].shape == (4, 8)
    assert "race" not in out  # weight 0: no head
    losses = model.losses(batch, out)
    assert set(losses) == {"cls", "gender", "group", "overall"}
    assert losses["group"].item() == 0.0  # every group unknown in this batch
    known = batch["gender"] >= 0
    gender = torch.nn.functional.cross_entropy(out["gender"][known], batch["gender"][known])
    torch.testing.assert_close(losses["gender"], gender)
    torch.testing.assert_close(losses["overall"], losses["cls"] + 0.5 * losses["gender"] + 0.2 * losses["group"])


def test_gradient_reversal_flips_the_demographic_gradient_on_the_backbone() -> None:
    def backbone_grad(reverse: bool) -> torch.Tensor:
        torch.manual_seed(0)
        cfg = ModelConfig(backbone="test_resnet", heads={"cls": 0.0, "gender": 1.0}, grad_reverse=reverse)
        model = MultiTaskDetector.from_config(cfg, 2, 4, 8)
        batch = _batch()
        model.losses(batch, model(batch))["gender"].backward()
        return next(p for p in model.backbone.parameters() if p.grad is not None).grad

    torch.testing.assert_close(backbone_grad(True), -backbone_grad(False))


def test_registry_lists_the_methods_and_predict_gives_probabilities() -> None:
    assert {"erm", "ddfg"} <= set(available_methods())
    method = get_method("erm")
    model = MultiTaskDetector.from_config(ModelConfig(backbone="test_resnet"), 2, 4, 8).eval()
    with torch.no_grad():
        p = method.predict(model, _batch())
    assert p.shape == (4,) and bool(((p >= 0) & (p <= 1)).all())
