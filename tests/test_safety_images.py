"""Bad image files: a decompression bomb, a truncated file, a changed file. Each is a named bad row
(or skipped where skipping is asked), never a traceback, in import, train, predict, balance and release."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairforge.config.train import DataConfig
from fairforge.errors import ManifestError
from fairforge.images import ImageError, image_size, open_image
from fairforge.importers import ImportOptions, import_imagefolder
from fairforge.manifest import file_sha256, read_manifest, write_manifest
from fairforge.taxonomy import DEFAULT_TAXONOMY
from fairforge.train.data import ManifestDataset, data_info, load_manifests


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 60-byte PNG whose header declares `width` x `height` pixels (30 GB decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def png(path: Path, value: int = 0, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_open_image_refuses_a_bomb_and_a_custom_limit(tmp_path: Path, monkeypatch) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    with pytest.raises(ImageError, match="bomb.png: .*pixels"):
        open_image(bomb)
    with pytest.raises(ImageError, match="bomb.png"):
        image_size(bomb)
    small = png(tmp_path / "ok.png", size=16)
    assert open_image(small).size == (16, 16)
    with pytest.raises(ImageError, match=r"declares 16x16 = 256 pixels, above the limit of 100"):
        open_image(small, max_pixels=100)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(small.read_bytes()[:60])
    with pytest.raises(ImageError, match="cut.png: not a readable image"):
        open_image(truncated)
    monkeypatch.setenv("FAIRFORGE_MAX_PIXELS", "200")
    with pytest.raises(ImageError, match="above the limit of 200"):
        open_image(small)


def test_import_bomb_is_a_bad_row_and_skip_bad_skips_it(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    png(root / "a.png")
    (root / "b.png").write_bytes(bomb_png())
    (root / "metadata.csv").write_text("file_name,label\na.png,0\nb.png,1\n")
    with pytest.raises(ManifestError, match=r"metadata.csv row 2 column 'file_name': unreadable image 'b.png'.*pixels"):
        import_imagefolder(root, tmp_path / "out")
    manifest = import_imagefolder(root, tmp_path / "out", options=ImportOptions(skip_bad=True))
    assert read_manifest(manifest)["path"].tolist() == ["images/a.png"]
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert rejected["row"].tolist() == [2] and "pixels" in rejected["reason"].iloc[0]


def _two_manifests(tmp_path: Path) -> list[str]:
    """Two manifests; the second one's row 2 is a bomb (so its row within the train split differs)."""
    paths = []
    for k in range(2):
        folder = tmp_path / f"m{k}"
        rows = []
        for i in range(4):
            png(folder / f"img/{i}.png", 10 * k + i)
            rows.append(
                {
                    "id": f"m{k}-{i}",
                    "path": f"img/{i}.png",
                    "label": i % 2,
                    "method": "real" if i % 2 == 0 else "sbi",
                    "source": "toy",
                    "split": "val" if i == 0 else "train",
                    "gender": "male",
                    "race": "White",
                }
            )
        paths.append(str(write_manifest(rows, folder / "manifest.parquet")))
    (tmp_path / "m1" / "img" / "2.png").write_bytes(bomb_png())
    return paths


def test_training_bomb_names_the_file_row_and_skip_bad_replaces_it(tmp_path: Path) -> None:
    files = _two_manifests(tmp_path)
    frame = load_manifests(files, "train", "data.train", DEFAULT_TAXONOMY)
    info = data_info(frame, DEFAULT_TAXONOMY)
    bad = int(np.flatnonzero(frame["id"].to_numpy() == "m1-2")[0])
    assert bad == 4  # its position in the train split: not the row a user finds in the file
    dataset = ManifestDataset(frame, info, DataConfig(train=files, resolution=16, num_workers=0))
    with pytest.raises(ManifestError, match=r"m1/manifest.parquet row 2 column 'path': cannot read image .*img/2.png"):
        dataset[bad]
    log = tmp_path / "skipped.txt"
    skipping = ManifestDataset(frame, info, DataConfig(train=files, resolution=16, skip_bad=True), skipped_log=log)
    item = skipping[bad]
    assert item["index"] == bad + 1 and log.read_text().split() == ["m1-2"]


def test_predict_style_loading_of_a_bomb_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    files = _two_manifests(tmp_path)
    frame = load_manifests(files[1:], None, "--manifest", DEFAULT_TAXONOMY)
    dataset = ManifestDataset(frame, data_info(frame, DEFAULT_TAXONOMY), DataConfig(train=files, resolution=16))
    with pytest.raises(ManifestError, match=r"row 2 column 'path'.*pixels"):
        dataset[2]


def test_balance_measure_marks_a_bomb_and_a_changed_file_unreadable(tmp_path: Path) -> None:
    from fairforge.balance.measure import ImageDataset, fingerprint

    good, bomb, changed = png(tmp_path / "g.png", 1), tmp_path / "b.png", png(tmp_path / "c.png", 2)
    bomb.write_bytes(bomb_png())
    recorded = file_sha256(changed)
    row = pd.Series({"path": "c.png", "sha256": recorded})
    before = fingerprint(row, tmp_path)
    changed.write_bytes(changed.read_bytes()[:-20])  # truncated after the manifest recorded its sha256
    assert fingerprint(row, tmp_path) != before  # so the cache measures it again
    dataset = ImageDataset(
        [str(good), str(bomb), str(changed)], [], 8, 8, None, 0, None, expected=[None, None, recorded]
    )
    assert [dataset[i]["readable"] for i in range(3)] == [True, False, False]


def test_release_decodes_before_embedding(tmp_path: Path) -> None:
    from fairforge.balance.release import run_release
    from fairforge.config.balance import ReleaseConfig

    folder = tmp_path / "dir"
    rows = []
    for i, split in enumerate(["train", "validation", "test"]):
        png(folder / f"img/{i}.png", i)
        rows.append(
            {"id": f"r{i}", "path": f"img/{i}.png", "label": 0, "method": "diffusion", "source": "fairforge-synth", "split": split}
        )
    write_manifest(rows, folder / "manifest.parquet")
    (folder / "img" / "1.png").write_bytes(bomb_png())
    with pytest.raises(ManifestError, match=r"manifest.parquet row 1 column 'path': .*pixels"):
        run_release(folder, tmp_path / "rel", ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    assert not list((tmp_path / "rel").glob("data/validation-*"))  # the bomb's split got no shard
