"""Training data: toy manifests (shared by the other train tests), dataset, sampler, named errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairforge.config.train import DataConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.manifest import write_manifest
from fairforge.taxonomy import DEFAULT_TAXONOMY
from fairforge.train.data import ManifestDataset, data_info, load_manifests, normalize_batch
from fairforge.train.sampling import TrainSampler


def make_toy_manifest(
    folder: Path, n: int = 64, size: int = 32, seed: int = 0, val: int = 0, sbi_pairs: bool = False
) -> Path:
    """A separable toy set: fakes carry a bright red square, reals a blue one, on noise.

    Groups cycle through the 8 gender-race cells (so every cell has both labels); `val` extra rows
    get `split: val`; with `sbi_pairs` every fake's `src_id` and `dst_id` are a real row's id (method `sbi`).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "img").mkdir(exist_ok=True)
    groups = DEFAULT_TAXONOMY.groups
    rows = []
    for i in range(n + val):
        label = i % 2
        image = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
        lo, hi = size // 4, 3 * size // 4
        image[lo:hi, lo:hi, 0 if label else 2] = 230
        path = f"img/{i:04d}.png"
        Image.fromarray(image).save(folder / path)
        gender, race = groups[(i // 2) % len(groups)].split("-")
        rows.append(
            {
                "id": f"toy-{i:04d}",
                "path": path,
                "label": label,
                "method": ("sbi" if sbi_pairs else "diffusion") if label else "real",
                "source": "toy",
                "split": "val" if i >= n else "train",
                "gender": gender,
                "race": race,
                "age": "20-29",
                "src_id": f"toy-{i - 1:04d}" if (label and sbi_pairs) else None,
                "dst_id": f"toy-{i - 1:04d}" if (label and sbi_pairs) else None,
            }
        )
    return write_manifest(rows, folder / "manifest.parquet")


def test_dataset_reads_rows_as_tensors(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path, n=16, size=32)
    frame = load_manifests([str(manifest)], "train", "data.train", DEFAULT_TAXONOMY)
    info = data_info(frame, DEFAULT_TAXONOMY)
    dataset = ManifestDataset(frame, info, DataConfig(resolution=48))
    item = dataset[3]
    assert item["image"].shape == (3, 48, 48) and item["image"].dtype.is_floating_point is False
    assert item["label"] == 1 and item["group"] == DEFAULT_TAXONOMY.group_index(*frame.loc[3, ["gender", "race"]])
    assert info.group_counts == (2,) * 8 and info.label_counts == (8, 8) and info.methods == ("real", "diffusion")
    batch = normalize_batch({"image": item["image"][None]}, DataConfig())
    assert batch["image"].dtype.is_floating_point


def test_balanced_sampler_equalizes_cells_and_is_reproducible(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path, n=64)
    frame = load_manifests([str(manifest)], None, "data.train", DEFAULT_TAXONOMY)
    # make the set unbalanced: drop most of one cell
    keep = ~((frame["gender"] == "male") & (frame["race"] == "Asian")) | (frame.index < 2)
    frame = frame[keep].reset_index(drop=True)
    cfg = DataConfig(balance="cell", epoch_size=8000)
    sampler = TrainSampler(frame, cfg, DEFAULT_TAXONOMY, seed=1, paired=False)
    sampler.set_epoch(0)
    keys = list(sampler)
    counts = Counter(frame.loc[[k for k, _ in keys], "gender"] + "-" + frame.loc[[k for k, _ in keys], "race"])
    assert len(counts) == 8 and min(counts.values()) > 800 and max(counts.values()) < 1200
    assert list(sampler) == keys  # same epoch, same order and augmentation seeds
    sampler.set_epoch(1)
    assert list(sampler) != keys


def test_paired_sampler_puts_each_fake_after_its_source(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path, n=32, sbi_pairs=True)
    frame = load_manifests([str(manifest)], None, "data.train", DEFAULT_TAXONOMY)
    sampler = TrainSampler(frame, DataConfig(paired=True, batch_size=4), DEFAULT_TAXONOMY, seed=0, paired=True)
    rows = [k for k, _ in sampler]
    assert len(rows) == 32
    for real, fake in zip(rows[::2], rows[1::2]):
        assert frame.at[real, "label"] == 0 and frame.at[fake, "dst_id"] == frame.at[real, "id"]
    with pytest.raises(ConfigError, match="data.batch_size"):
        TrainSampler(frame, DataConfig(paired=True, batch_size=3), DEFAULT_TAXONOMY, seed=0, paired=True)


def test_missing_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope.parquet.*manifest not found"):
        load_manifests([str(tmp_path / "nope.parquet")], None, "data.train", DEFAULT_TAXONOMY)
    with pytest.raises(ConfigError, match="data.train: no manifest given"):
        load_manifests([], None, "data.train", DEFAULT_TAXONOMY)
    manifest = make_toy_manifest(tmp_path, n=4)
    with pytest.raises(ConfigError, match="data.val: no row with split == 'validation'"):
        load_manifests([str(manifest)], "val", "data.val", DEFAULT_TAXONOMY)


def test_corrupt_image_names_file_row_and_path(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path, n=8)
    (tmp_path / "img" / "0005.png").write_bytes(b"not a png")
    (tmp_path / "img" / "0006.png").unlink()
    frame = load_manifests([str(manifest)], None, "data.train", DEFAULT_TAXONOMY)
    info = data_info(frame, DEFAULT_TAXONOMY)
    dataset = ManifestDataset(frame, info, DataConfig(resolution=32))
    with pytest.raises(ManifestError, match=r"manifest.parquet row 5 column 'path': cannot read image .*0005.png"):
        dataset[5]
    with pytest.raises(ManifestError, match=r"row 6 column 'path': cannot read image .*0006.png.*FileNotFoundError"):
        dataset[6]
    log = tmp_path / "skipped_ids.txt"
    skipping = ManifestDataset(frame, info, DataConfig(resolution=32, skip_bad=True), skipped_log=log)
    assert skipping[5]["index"] == 7  # 5 and 6 are bad: replaced by the next readable row
    assert log.read_text().split() == ["toy-0005", "toy-0006"]


def test_blends_are_paired_with_their_partner_row_not_their_source_face() -> None:
    """A blend whose target was transformed pairs with that transformed target (its `dst_id`)."""
    from fairforge.train.sampling import pairs

    frame = pd.DataFrame(
        {
            "id": ["face", "face-t", "blend", "blend2"],
            "label": [0, 0, 1, 1],
            "method": ["diffusion", "sbi_target", "sbi", "sbi"],
            "src_id": [None, "face", "face", "face"],
            "dst_id": [None, None, "face-t", "face"],
        }
    )
    reals, partners = pairs(frame, "sbi")
    assert {frame.at[r, "id"]: sorted(frame.loc[p, "id"]) for r, p in zip(reals, partners)} == {
        "face": ["blend2"],
        "face-t": ["blend"],
    }
