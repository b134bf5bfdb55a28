"""PG-FDD as the authors' code has it: half-real batches, reals first; encoders on timm's
pre-activation features; contiguous specific labels; their StepLR; their test-time score."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler

from fairforge.config.train import DataConfig, SchedulerConfig, TrainConfig
from fairforge.taxonomy import DEFAULT_TAXONOMY
from fairforge.train.data import DataInfo, data_info
from fairforge.train.methods import get_method
from fairforge.train.methods.pg_fdd import specific_classes, specific_labels
from fairforge.train.pg_fdd_model import Encoder, adain
from fairforge.train.sampling import TrainSampler


def _frame(reals: int, fakes: int) -> pd.DataFrame:
    groups = DEFAULT_TAXONOMY.groups
    rows = []
    for i in range(reals + fakes):
        gender, race = groups[i % len(groups)].split("-")
        fake = i >= reals
        rows.append(
            {
                "id": f"r{i}",
                "label": int(fake),
                "method": ("Deepfakes", "Face2Face")[i % 2] if fake else "real",
                "gender": gender,
                "race": race,
                "domain": None,
                "source": "toy",
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("processes", [1, 2])
def test_batches_are_half_real_reals_first(processes: int) -> None:
    frame = _frame(reals=7, fakes=24)  # fewer reals than fakes: reals are drawn with replacement
    cfg = DataConfig(batch_size=8, balance="label")
    sampler = TrainSampler(frame, cfg, DEFAULT_TAXONOMY, seed=3, paired=False, halves=True)
    sampler.set_epoch(1)
    batches = BatchSampler(sampler, cfg.batch_size, drop_last=True)
    shards = [BatchSamplerShard(batches, processes, p) for p in range(processes)]
    labels = frame["label"].to_numpy()
    seen_fakes: list[int] = []
    for shard in shards:
        for batch in shard:
            rows = [row for row, _ in batch]
            assert labels[rows].tolist() == [0] * 4 + [1] * 4  # every process's batch: reals, then fakes
            seen_fakes += rows[4:]
    assert sorted(seen_fakes) == sorted(np.flatnonzero(labels == 1).tolist())  # each fake once per epoch
    assert len(sampler) == 24 * 2
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) == first  # a pure function of (seed, epoch): resumable, equal on every process


def test_pg_fdd_asks_for_half_real_batches_and_refuses_pairs_or_odd_batches() -> None:
    from fairforge.errors import ConfigError

    method = get_method("pg_fdd")
    assert method.real_fake_halves and not get_method("erm").real_fake_halves
    cfg = TrainConfig(method="pg_fdd")
    cfg.data.batch_size = 5
    with pytest.raises(ConfigError, match="data.batch_size: .*even"):
        method.check_config(cfg)
    cfg.data.batch_size, cfg.data.paired = 4, True
    with pytest.raises(ConfigError, match="data.paired"):
        method.check_config(cfg)


def _pre_activation(backbone: torch.nn.Module, activation: str, image: torch.Tensor) -> torch.Tensor:
    """timm's own forward_features, with the input of its final activation captured by a hook."""
    captured = {}
    module = backbone.get_submodule(activation)
    handle = module.register_forward_pre_hook(lambda _, args: captured.update(x=args[0].clone()))
    with torch.no_grad():
        after = backbone.forward_features(image)
    handle.remove()
    assert not torch.allclose(after, captured["x"])  # the activation changes the features
    return captured["x"]


@pytest.mark.parametrize(("name", "activation"), [("legacy_xception", "act4"), ("test_efficientnet", "bn2.act")])
def test_encoders_output_timms_pre_activation_features(name: str, activation: str) -> None:
    import timm

    torch.manual_seed(0)
    backbone = timm.create_model(name, pretrained=False, num_classes=0).eval()
    image = torch.randn(2, 3, 32, 32)
    expected = _pre_activation(backbone, activation, image)
    encoder = Encoder(copy.deepcopy(backbone), feat_dim=16).eval()
    with torch.no_grad():
        features = encoder.backbone.forward_features(image)
        projected = encoder(image)
    torch.testing.assert_close(features, expected)
    # then the authors' adjust_channel: 1x1 conv, BN, ReLU on those features
    adjust = encoder.adjust.proj
    torch.testing.assert_close(projected, torch.relu(adjust[1](adjust[0](expected))))


def test_specific_labels_are_contiguous() -> None:
    frame = _frame(reals=6, fakes=6)
    frame.loc[1, "method"] = "diffusion"  # a pristine generated face: real, with a method of its own
    info = data_info(frame, DEFAULT_TAXONOMY)
    assert info.methods == ("real", "Deepfakes", "Face2Face", "diffusion")
    assert info.fake_methods == ("Deepfakes", "Face2Face")
    classes = specific_classes(info)
    method = torch.tensor([info.methods.index(m) for m in frame["method"]])
    labels = specific_labels({"label": torch.tensor(frame["label"].to_numpy()), "method": method}, classes)
    assert labels.tolist() == [0] * 6 + [1, 2] * 3  # real, Deepfakes, Face2Face: 0, 1, 2, no class skipped
    restored = DataInfo.from_dict({k: v for k, v in info.to_dict().items() if k != "fake_methods"})
    assert restored.fake_methods == ("Deepfakes", "Face2Face", "diffusion")  # an export without the field
    assert DataInfo.from_dict(info.to_dict()) == info


def test_step_schedule_is_the_published_per_epoch_steplr() -> None:
    from fairforge.train.optim import build_scheduler

    weights = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD(weights, lr=1.0)
    reference = torch.optim.lr_scheduler.StepLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 2, 0.9)
    scheduler = build_scheduler(optimizer, SchedulerConfig(name="step", step_epochs=2, gamma=0.9), 100, 3)
    for epoch in range(7):
        for _ in range(3):  # three updates per epoch, the LR constant within an epoch
            assert scheduler.get_last_lr()[0] == pytest.approx(reference.get_last_lr()[0]), epoch
            optimizer.step()
            scheduler.step()
        reference.optimizer.step()
        reference.step()


def test_shipped_recipes_are_the_authors() -> None:
    from fairforge.train.run import load_config

    pg = load_config("pg_fdd")
    assert (pg.optimizer.name, pg.optimizer.base, pg.optimizer.lr, pg.optimizer.rho) == ("sam", "sgd", 5e-4, 0.05)
    assert (pg.optimizer.momentum, pg.optimizer.weight_decay, pg.epochs, pg.data.batch_size) == (0.9, 5e-3, 100, 32)
    assert (pg.scheduler.name, pg.scheduler.step_epochs, pg.scheduler.gamma) == ("step", 60, 0.9)
    assert pg.pg_fdd.fair_loss == "paper" and pg.model.backbone == "legacy_xception"
    for name in ("daw_fdd", "dag_fdd"):  # AI-Face-FairnessBench's train_test.py
        cfg = load_config(name)
        assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum) == ("sgd", 5e-4, 0.9), name
        assert (cfg.optimizer.weight_decay, cfg.data.batch_size, cfg.epochs) == (5e-3, 128, 10), name
        assert (cfg.scheduler.name, cfg.scheduler.step_epochs, cfg.scheduler.gamma) == ("step", 60, 0.9), name
        assert getattr(cfg, name).fair_loss == "paper"


def test_adain_output_has_style_statistics() -> None:
    torch.manual_seed(0)
    content = torch.randn(3, 4, 5, 6) * 2.0 + 1.0
    style = torch.randn(3, 4, 5, 6) * 0.5 - 3.0
    out = adain(content, style)
    flat_out, flat_style = out.flatten(2), style.flatten(2)
    assert torch.allclose(flat_out.mean(-1), flat_style.mean(-1), atol=1e-5)
    assert torch.allclose(flat_out.std(-1), flat_style.std(-1), rtol=1e-4)


def test_score_reference_is_the_sigmoid_of_the_fake_logit(tmp_path: Path, tiny_cache) -> None:  # noqa: ANN001
    """`fairforge train predict --score reference` on a trained PG-FDD export: sigmoid(fused[:, 1])."""
    import pyarrow.parquet as pq
    from test_train_data import make_toy_manifest

    from fairforge.cli import main
    from fairforge.train.checkpoint import load_export
    from fairforge.train.data import ManifestDataset, load_manifests, normalize_batch
    from fairforge.train.run import load_config, train

    toy = make_toy_manifest(tmp_path / "data", n=16, size=32)
    run = tmp_path / "run"
    overrides = [f"data.train=[{toy}]", f"output_dir={run}", "max_steps=1", "data.batch_size=4", "method=pg_fdd"]
    train(load_config("tiny", [*overrides, "pg_fdd.feat_dim=16"]))
    scores = {}
    for score in ("softmax", "reference"):
        out = tmp_path / f"{score}.parquet"
        args = ["train", "predict", "--checkpoint", str(run / "final"), "--manifest", str(toy), "--out", str(out)]
        assert main([*args, "--score", score, "--num-workers", "0"]) == 0
        scores[score] = pq.read_table(out).column("score").to_numpy()

    cfg, info, weights = load_export(run / "final")
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"pretrained": False})})
    net = get_method("pg_fdd").build_model(cfg, info)
    net.load_state_dict(weights)
    net.eval()
    frame = load_manifests([str(toy)], None, "toy", info.taxonomy)
    dataset = ManifestDataset(frame, info, cfg.data)
    batch = {k: torch.stack([torch.as_tensor(dataset[i][k]) for i in range(len(dataset))]) for k in ("image",)}
    with torch.no_grad():
        logits = net.detect(normalize_batch(batch, cfg.data)["image"])
    np.testing.assert_allclose(scores["reference"], torch.sigmoid(logits[:, 1]).numpy(), atol=1e-6)
    np.testing.assert_allclose(scores["softmax"], torch.softmax(logits, -1)[:, 1].numpy(), atol=1e-6)
    assert not np.allclose(scores["reference"], scores["softmax"])
