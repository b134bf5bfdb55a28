"""The manifest contract: round trip, every validation error, path escapes, shards and merge."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fairforge import manifest as mf
from fairforge.errors import ManifestError


def rows(n: int = 3) -> list[dict]:
    return [
        {
            "id": f"img{i}",
            "path": f"images/img{i}.png",
            "label": i % 2,
            "method": "diffusion" if i % 2 == 0 else "sbi",
            "source": "fairforge-synth",
            "gender": "male",
            "race": "Asian",
            "age": "20-29",
            "seed": 1000 + i,
            "guidance": 7.5,
            "pred_race_conf": 0.9,
        }
        for i in range(n)
    ]


def test_round_trip_keeps_schema_types_and_values(tmp_path):
    path = mf.write_manifest(rows(), tmp_path)
    assert path == tmp_path / "manifest.parquet"
    schema = pq.read_schema(path)
    for name, dtype in mf.FIELDS.items():
        assert schema.field(name).type == dtype, name
    back = mf.read_manifest(tmp_path)
    assert back["id"].tolist() == ["img0", "img1", "img2"]
    assert back["label"].tolist() == [0, 1, 0]
    assert back["seed"].tolist() == [1000, 1001, 1002]
    assert back.attrs["root"] == str(tmp_path)
    assert mf.image_path(back, 1) == tmp_path / "images/img1.png"


def test_extra_columns_are_kept(tmp_path):
    data = rows()
    for r in data:
        r["round"] = 2
    mf.write_manifest(data, tmp_path)
    assert mf.read_manifest(tmp_path)["round"].tolist() == [2, 2, 2]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("label", 3, "row 1 column 'label': label must be 0 or 1, got 3"),
        ("path", "../outside.png", "row 1 column 'path': path may not leave the manifest's folder"),
        ("path", "/abs/x.png", "row 1 column 'path': path must be relative"),
        ("path", "a\\b.png", "row 1 column 'path': path must use '/' separators"),
        ("id", "img0", "row 1 column 'id': duplicate id 'img0'"),
        ("path", "images/img0.png", "row 1 column 'path': duplicate path"),
        ("race", "Martian", "row 1 column 'race': race must be one of"),
        ("gender", "robot", "row 1 column 'gender': gender must be one of"),
        ("split", "holdout", "row 1 column 'split': split must be one of"),
        ("pred_race_conf", 1.5, "row 1 column 'pred_race_conf': pred_race_conf must be a probability"),
        ("method", None, "row 1 column 'method': method is required"),
    ],
)
def test_validation_names_file_row_and_column(tmp_path, column, value, message):
    data = rows()
    data[1][column] = value
    with pytest.raises(ManifestError) as err:
        mf.write_manifest(data, tmp_path / "manifest.parquet")
    assert str(err.value).startswith(str(tmp_path / "manifest.parquet"))
    assert message in str(err.value)
    assert not (tmp_path / "manifest.parquet").exists()


def test_missing_required_column_is_named(tmp_path):
    frame = pd.DataFrame(rows()).drop(columns="source")
    pq.write_table(mf.to_table(frame).drop(["source"]), tmp_path / "manifest.parquet")
    with pytest.raises(ManifestError, match="column 'source': required column is missing"):
        mf.read_manifest(tmp_path)


def test_wrong_type_is_named(tmp_path):
    data = rows()
    data[2]["seed"] = "not-a-seed"
    with pytest.raises(ManifestError, match="row 2 column 'seed': expected int64"):
        mf.write_manifest(data, tmp_path)


def test_check_files_reports_the_missing_image(tmp_path):
    mf.write_manifest(rows(), tmp_path)
    with pytest.raises(ManifestError, match="row 0 column 'path': image file 'images/img0.png' does not exist"):
        mf.read_manifest(tmp_path, check_files=True)


def test_unreadable_and_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        mf.read_manifest(tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="not a readable Parquet file"):
        mf.read_manifest(tmp_path)


def test_failed_write_keeps_the_previous_manifest(tmp_path, monkeypatch):
    """A crash between the temp file and the rename leaves the old manifest intact and no temp file."""
    mf.write_manifest(rows(2), tmp_path)
    before = (tmp_path / "manifest.parquet").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before rename")

    monkeypatch.setattr(mf.os, "replace", crash, raising=False)
    import fairforge.atomic as atomic

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        mf.write_manifest(rows(3), tmp_path)
    assert (tmp_path / "manifest.parquet").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]


def test_shards_resume_and_merge_idempotently(tmp_path):
    data = rows(5)
    with mf.ShardWriter(tmp_path, name="rank0", flush_every=2) as writer:
        for r in data[:3]:
            writer.add(r)
    with mf.ShardWriter(tmp_path, name="rank1", flush_every=2) as writer:
        writer.add(data[3])
    assert mf.completed_ids(tmp_path) == {"img0", "img1", "img2", "img3"}
    # a second writer of the same rank continues the sequence instead of overwriting
    with mf.ShardWriter(tmp_path, name="rank0") as writer:
        writer.add(data[4])
        writer.add(data[0])  # a duplicate (re-done after a crash): the first written wins
    order = [r["id"] for r in reversed(data)]
    mf.merge_shards(tmp_path, order=order, taxonomy=mf.DEFAULT_TAXONOMY)
    merged = mf.read_manifest(tmp_path)
    assert merged["id"].tolist() == order
    assert not (tmp_path / "shards").exists()
    again = mf.merge_shards(tmp_path, order=order, taxonomy=mf.DEFAULT_TAXONOMY)
    assert mf.read_manifest(again)["id"].tolist() == order


def test_concat_rebases_paths(tmp_path):
    mf.write_manifest(rows(1), tmp_path / "a")
    other = rows(2)[1:]
    mf.write_manifest(other, tmp_path / "b")
    joined = mf.concat_manifests([mf.read_manifest(tmp_path / "a"), mf.read_manifest(tmp_path / "b")])
    assert joined["path"].tolist() == ["images/img0.png", "../b/images/img1.png"]


def test_large_seeds_survive_a_round_trip_with_nulls(tmp_path):
    data = rows(2)
    data[0]["seed"] = 2**62 + 1
    data[1]["seed"] = None
    mf.write_manifest(data, tmp_path)
    back = mf.read_manifest(tmp_path)
    assert back["seed"].iloc[0] == 2**62 + 1
    assert back["seed"].isna().iloc[1]
