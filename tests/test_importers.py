"""Importers on small files written here: PG-FDD CSVs, DeepfakeBench JSONs, imagefolders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fairforge.cli import main
from fairforge.errors import ConfigError, ManifestError
from fairforge.importers import ImportOptions, import_deepfakebench, import_imagefolder, import_pgfdd
from fairforge.manifest import read_manifest

HEADER = "img_path,label,ismale,isasian,iswhite,isblack,intersec_label,spe_label"


def png(path: Path, size: tuple[int, int] = (8, 6), value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 10, 20)).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def ffpp(tmp_path: Path) -> tuple[Path, Path]:
    """An FF++-style images root (real video 000, fake 000_003) and its PG-FDD CSV."""
    root = tmp_path / "data"
    png(root / "original/frames/000/0.png", (8, 6), 1)
    png(root / "original/frames/000/1.png", (8, 6), 2)
    png(root / "Deepfakes/frames/000_003/0.png", (10, 7), 3)
    png(root / "Face2Face/frames/001_002/0.png", (10, 7), 4)
    csv = write(
        tmp_path / "train.csv",
        f"{HEADER}\n"
        "original/frames/000/0.png,0,1,1,-1,-1,0,0\n"  # male-Asian real
        "original/frames/000/1.png,0,1,1,-1,-1,0,0\n"
        "Deepfakes/frames/000_003/0.png,1,-1,-1,1,-1,5,1\n"  # female-White Deepfakes
        "Face2Face/frames/001_002/0.png,1,1,-1,-1,-1,3,2\n",  # male-Others Face2Face
    )
    return root, csv


# ------------------------------------------------------------------------------------------------
# PG-FDD
# ------------------------------------------------------------------------------------------------
def test_pgfdd_happy_path(ffpp, tmp_path):
    root, csv = ffpp
    out = tmp_path / "out"
    path = import_pgfdd(csv, root, out, "ffpp", "train")
    assert path == out / "manifest.parquet"
    df = read_manifest(out, check_files=True)
    assert df["gender"].tolist() == ["male", "male", "female", "male"]
    assert df["race"].tolist() == ["Asian", "Asian", "White", "Others"]
    assert df["label"].tolist() == [0, 0, 1, 1]
    assert df["method"].tolist() == ["real", "real", "Deepfakes", "Face2Face"]
    assert df["domain"].tolist() == ["real", "real", "Deepfakes", "Face2Face"]  # FF++: domain = method
    assert set(df["source"]) == {"ffpp"} and set(df["split"]) == {"train"} and set(df["age"]) == {"unknown"}
    # persons, not videos: a manipulated video t_s shows target t with the face of s
    assert df["identity"].tolist() == ["ffpp/000", "ffpp/000", "ffpp/000", "ffpp/001"]
    assert df["src_identity"].fillna("").tolist() == ["", "", "ffpp/003", "ffpp/002"]
    assert df["id"].iat[2] == "ffpp/Deepfakes/frames/000_003/0.png"
    # images outside --out are symlinked under out/images; the manifest never leaves its folder
    assert df["path"].iat[2] == "images/Deepfakes/frames/000_003/0.png"
    assert (out / df["path"].iat[2]).is_symlink()
    assert (df["width"].iat[2], df["height"].iat[2]) == (10, 7)
    assert df["sha256"].iat[0] == hashlib.sha256((root / "original/frames/000/0.png").read_bytes()).hexdigest()
    assert not (out / "rejected.parquet").exists()


def test_pgfdd_six_groups_without_isasian_and_signed_labels(tmp_path):
    root = tmp_path / "celeb"
    png(root / "Celeb-real/id0_0000/0.png")
    png(root / "Celeb-synthesis/id0_id1_0000/0.png")
    csv = write(
        tmp_path / "test.csv",
        "img_path,label,ismale,iswhite,isblack,intersec_label\n"
        "Celeb-real/id0_0000/0.png,-1,-1,-1,1,4\n"  # female-Black, real
        "Celeb-synthesis/id0_id1_0000/0.png,1,1,1,-1,0\n",  # male-White, fake
    )
    df = read_manifest(import_pgfdd(csv, root, tmp_path / "out", "celebdf", "test"))
    assert list(zip(df["gender"], df["race"])) == [("female", "Black"), ("male", "White")]
    assert df["label"].tolist() == [0, 1]
    assert df["method"].tolist() == ["real", "celebdf"] and set(df["domain"]) == {"celebdf"}


@pytest.mark.parametrize(
    ("line", "column", "words"),
    [
        ("original/frames/000/1.png,0,1,1,1,-1,0,0", "iswhite", "contradicts intersec_label 0 (male-Asian)"),
        ("original/frames/000/1.png,0,-1,1,-1,-1,0,0", "ismale", "contradicts"),
        ("original/frames/000/1.png,0,1,1,-1,-1,8,0", "intersec_label", "unknown group code '8'"),
        ("original/frames/000/1.png,0,1,1,-1,-1,x,0", "intersec_label", "unknown group code 'x'"),
        ("original/frames/000/1.png,0,1,1,-1,0,0,0", "isblack", "must be +1 or -1"),
        ("original/frames/000/1.png,1,1,1,-1,-1,0,0", "spe_label", "contradicts label 1"),
        ("original/frames/000/1.png,0,1,1,-1,-1,0,6", "spe_label", "0..5"),
        ("original/frames/000/1.png,2,1,1,-1,-1,0,0", "label", "0/1"),
        ("original/frames/000/9.png,0,1,1,-1,-1,0,0", "img_path", "not found"),
        (
            "original/frames/000/0.png,0,1,1,-1,-1,0,0",
            "img_path",
            "duplicate path 'original/frames/000/0.png' (first at row 1)",
        ),
        ("../outside.png,0,1,1,-1,-1,0,0", "img_path", "leaves --images-root"),
        ("/elsewhere/x.png,0,1,1,-1,-1,0,0", "img_path", "--strip-prefix"),
    ],
)
def test_pgfdd_bad_row_names_file_row_and_column(ffpp, tmp_path, line, column, words):
    root, _ = ffpp
    csv = write(tmp_path / "bad.csv", f"{HEADER}\noriginal/frames/000/0.png,0,1,1,-1,-1,0,0\n{line}\n")
    with pytest.raises(ManifestError) as info:
        import_pgfdd(csv, root, tmp_path / "out", "ffpp", "train")
    message = str(info.value)
    assert message.startswith(f"{csv} row 2 column {column!r}: "), message
    assert words in message
    assert not (tmp_path / "out" / "manifest.parquet").exists()


def test_pgfdd_six_group_code_out_of_range(tmp_path):
    root = tmp_path / "dfd"
    png(root / "v/0.png")
    csv = write(tmp_path / "c.csv", "img_path,label,ismale,iswhite,isblack,intersec_label\nv/0.png,0,1,1,-1,6\n")
    with pytest.raises(ManifestError, match=r"row 1 column 'intersec_label'.*6 groups 0\.\.5"):
        import_pgfdd(csv, root, tmp_path / "out", "dfd", "test")


def test_pgfdd_unreadable_image(ffpp, tmp_path):
    root, csv = ffpp
    write(root / "Deepfakes/frames/000_003/0.png", "not an image")
    with pytest.raises(ManifestError, match=r"row 3 column 'img_path': unreadable image"):
        import_pgfdd(csv, root, tmp_path / "out", "ffpp", "train")


def test_pgfdd_missing_column(ffpp, tmp_path):
    root, _ = ffpp
    csv = write(tmp_path / "c.csv", "img_path,label,ismale,isasian,iswhite,intersec_label\nx.png,0,1,1,-1,0\n")
    with pytest.raises(ManifestError, match=r"column 'isblack': missing column\(s\) \['isblack'\]"):
        import_pgfdd(csv, root, tmp_path / "out", "ffpp", "train")


def test_pgfdd_skip_bad_writes_rejected_and_rerun_cleans_up(ffpp, tmp_path):
    root, good_csv = ffpp
    write(root / "broken/0.png", "garbage")
    csv = write(
        tmp_path / "mixed.csv",
        good_csv.read_text()
        + "original/frames/000/1.png,0,1,1,1,-1,0,0\n"  # duplicate + wrong flag
        + "missing/0.png,0,1,1,-1,-1,0,0\n"
        + "broken/0.png,0,1,1,-1,-1,0,0\n"
        + "original/frames/000/0.png,1,1,1,-1,-1,9,3\n",  # bad code and duplicate
    )
    out = tmp_path / "out"
    import_pgfdd(csv, root, out, "ffpp", "train", options=ImportOptions(skip_bad=True))
    df = read_manifest(out, check_files=True)
    assert len(df) == 4
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert rejected["row"].tolist() == [5, 6, 7, 8]
    assert rejected["img_path"].tolist() == [
        "original/frames/000/1.png",
        "missing/0.png",
        "broken/0.png",
        "original/frames/000/0.png",
    ]
    assert "iswhite" in rejected["reason"].iat[0] and "not found" in rejected["reason"].iat[1]
    assert "unreadable image" in rejected["reason"].iat[2] and "intersec_label" in rejected["reason"].iat[3]
    assert {"label", "ismale", "intersec_label", "spe_label", "reason"} <= set(rejected.columns)
    # a clean rerun with fewer rows replaces manifest, images and the stale rejected.parquet
    write(csv, good_csv.read_text().splitlines()[0] + "\n" + good_csv.read_text().splitlines()[3] + "\n")
    import_pgfdd(csv, root, out, "ffpp", "train")
    assert len(read_manifest(out)) == 1
    assert not (out / "rejected.parquet").exists()
    linked = sorted(p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*.png"))
    assert linked == ["Deepfakes/frames/000_003/0.png"]
    assert not [p for p in out.iterdir() if p.name.startswith(".images")]


def test_placement_in_place_copy_and_strip_prefix(ffpp, tmp_path):
    root, csv = ffpp
    # images-root inside --out: referenced in place through relative paths, nothing linked
    df = read_manifest(import_pgfdd(csv, root, tmp_path, "ffpp", "val"), check_files=True)
    assert df["path"].iat[0] == "data/original/frames/000/0.png" and not (tmp_path / "images").exists()
    # --copy: real files under out/images
    out = tmp_path / "copied"
    df = read_manifest(import_pgfdd(csv, root, out, "ffpp", "val", options=ImportOptions(place="copy")))
    copied = out / df["path"].iat[0]
    assert copied.is_file() and not copied.is_symlink()
    # absolute paths of the annotator's machine, mapped with --strip-prefix
    header, *lines = csv.read_text().splitlines()
    absolute = write(
        tmp_path / "abs.csv", "\n".join([header, *("/home/someone/ffpp/" + line for line in lines)]) + "\n"
    )
    with pytest.raises(ManifestError, match="not under --images-root"):
        import_pgfdd(absolute, root, tmp_path / "abs", "ffpp", "val")
    df = read_manifest(
        import_pgfdd(absolute, root, tmp_path / "abs", "ffpp", "val", strip_prefix="/home/someone/ffpp/")
    )
    assert len(df) == 4 and all(not p.startswith(("/", "..")) for p in df["path"])


def test_foreign_images_folder_is_never_replaced(ffpp, tmp_path):
    root, csv = ffpp
    out = tmp_path / "out"
    png(out / "images/mine.png")
    with pytest.raises(Exception, match="not made by `fairforge import`"):
        import_pgfdd(csv, root, out, "ffpp", "train")
    assert (out / "images/mine.png").is_file()


def test_no_verify_images_still_checks_existence(ffpp, tmp_path):
    root, csv = ffpp
    df = read_manifest(
        import_pgfdd(csv, root, tmp_path / "out", "ffpp", "train", options=ImportOptions(verify_images=False))
    )
    assert df["width"].isna().all() and df["sha256"].isna().all()
    (root / "original/frames/000/1.png").unlink()
    with pytest.raises(ManifestError, match="row 2 column 'img_path': image file"):
        import_pgfdd(csv, root, tmp_path / "out", "ffpp", "train", options=ImportOptions(verify_images=False))


# ------------------------------------------------------------------------------------------------
# DeepfakeBench
# ------------------------------------------------------------------------------------------------
def deepfakebench_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "datasets"
    frames = {
        "ff_real": ["FaceForensics++/original_sequences/youtube/c23/frames/000/000.png"],
        "ff_fake": [
            "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003/000.png",
            "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003/001.png",
        ],
        "celeb": ["Celeb-DF-v2/Celeb-real/frames/id0_0000/000.png"],
    }
    for paths in frames.values():
        for p in paths:
            png(root / p)
    win = "./datasets\\" + frames["ff_fake"][1].replace("/", "\\")  # DeepfakeBench's own spelling
    data = {
        "FaceForensics++": {
            "FF-real": {
                "train": {
                    "c23": {"000": {"label": "FF-real", "frames": [str(root / frames["ff_real"][0])]}},
                    "c40": {},
                },
                "val": {"c23": {}},
                "test": {"c23": {}},
            },
            "FF-DF": {
                "train": {"c23": {"000_003": {"label": "FF-DF", "frames": ["datasets/" + frames["ff_fake"][0], win]}}},
                "val": {"c23": {}},
                "test": {"c23": {}},
            },
        },
        "Celeb-DF-v2": {
            "CelebDFv2_real": {
                "train": {},
                "val": {"id0_0000": {"label": "CelebDFv2_real", "frames": ["datasets/" + frames["celeb"][0]]}},
                "test": {"id0_0000": {"label": "CelebDFv2_real", "frames": ["datasets/" + frames["celeb"][0]]}},
            }
        },
    }
    return root, write(tmp_path / "bench.json", json.dumps(data))


def test_deepfakebench_happy_path(tmp_path):
    root, js = deepfakebench_tree(tmp_path)
    # the JSON mixes absolute, relative and `./datasets\...` paths: resolve all against the parent
    df = read_manifest(import_deepfakebench(js, root.parent, tmp_path / "out"), check_files=True)
    assert len(df) == 4
    ff = df[df["source"] == "ffpp"]
    assert ff["label"].tolist() == [0, 1, 1]
    assert ff["method"].tolist() == ["real", "Deepfakes", "Deepfakes"]
    assert ff["domain"].tolist() == ["real", "Deepfakes", "Deepfakes"]
    assert ff["identity"].tolist() == ["ffpp/000", "ffpp/000", "ffpp/000"]  # 000_003: target 000, face of 003
    assert ff["src_identity"].fillna("").tolist() == ["", "ffpp/003", "ffpp/003"]
    celeb = df[df["source"] == "celebdf"]
    assert celeb["identity"].tolist() == ["celebdf/id0"]  # id0_0000: celebrity id0
    assert celeb["split"].tolist() == ["test"]  # listed as val and test: kept once, in test
    assert celeb["domain"].tolist() == ["celebdf"]
    assert set(df["gender"]) == {"unknown"} and set(df["race"]) == {"unknown"}


def test_deepfakebench_label_map_compression_and_attributes(tmp_path):
    root, js = deepfakebench_tree(tmp_path)
    attributes = write(tmp_path / "attrs.csv", "video,gender,race\n000,Male,East Asian\n000_003,Female,Indian\n")
    path = import_deepfakebench(
        js,
        root.parent,
        tmp_path / "out",
        label_map={"CelebDFv2_real": 1},
        datasets=["Celeb-DF-v2", "FaceForensics++"],
        splits=["train", "test"],
        attributes=attributes,
    )
    df = read_manifest(path)
    assert df.loc[df["source"] == "celebdf", "label"].tolist() == [1]
    ff = df[df["source"] == "ffpp"]
    assert list(zip(ff["gender"], ff["race"])) == [("male", "Asian"), ("female", "Others"), ("female", "Others")]
    assert df.loc[df["source"] == "celebdf", "gender"].tolist() == ["unknown"]
    with pytest.raises(ManifestError, match="no compression level 'c99'"):
        import_deepfakebench(js, root.parent, tmp_path / "out2", compression="c99")
    bad = write(tmp_path / "bad_attrs.csv", "video,gender,race\n000,Male,Martian\n")
    with pytest.raises(ManifestError, match=r"bad_attrs.csv row 1 column 'race': 'Martian' is not a race"):
        import_deepfakebench(js, root.parent, tmp_path / "out3", attributes=bad)


def test_deepfakebench_missing_frame_names_json_row(tmp_path):
    root, js = deepfakebench_tree(tmp_path)
    (root / "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_003/000.png").unlink()
    with pytest.raises(ManifestError, match=r"bench.json row 2 column 'frames': image file .*000_003/000.png"):
        import_deepfakebench(js, root.parent, tmp_path / "out")
    import_deepfakebench(js, root.parent, tmp_path / "out", options=ImportOptions(skip_bad=True))
    rejected = pd.read_parquet(tmp_path / "out/rejected.parquet")
    assert rejected[["dataset", "label_name", "split", "compression", "video"]].iloc[0].tolist() == [
        "FaceForensics++",
        "FF-DF",
        "train",
        "c23",
        "000_003",
    ]


# ------------------------------------------------------------------------------------------------
# imagefolder
# ------------------------------------------------------------------------------------------------
def test_imagefolder_in_place_with_split_folders_and_jsonl(tmp_path):
    root = tmp_path / "faces"
    png(root / "a.png")
    png(root / "b/c.png")
    png(root / "test/d.png")
    write(
        root / "metadata.csv",
        "file_name,label,gender,race,age,method,seed,extra\na.png,0,Male,East Asian,20-29,,7,x\nb/c.png,fake,Female,Black,,sbi,,y\n",
    )
    write(
        root / "test/metadata.jsonl",
        json.dumps({"file_name": "d.png", "label": 1, "gender": "woman", "seed": 12345678901234567}) + "\n",
    )
    df = read_manifest(import_imagefolder(root, root), check_files=True)
    assert df["path"].tolist() == ["a.png", "b/c.png", "test/d.png"]
    assert df["gender"].tolist() == ["male", "female", "female"]
    assert df["race"].tolist() == ["Asian", "Black", "unknown"]
    assert df["age"].tolist() == ["20-29", "unknown", "unknown"]
    assert df["label"].tolist() == [0, 1, 1]
    assert df["method"].tolist() == ["real", "sbi", "unknown"]
    assert df["split"].tolist()[2] == "test" and pd.isna(df["split"].iat[0])
    # read the file itself: pandas turns a nullable int64 column into floats
    assert pq.read_table(root / "manifest.parquet")["seed"].to_pylist() == [7, None, 12345678901234567]
    assert set(df["source"]) == {"faces"} and df["id"].iat[0] == "faces/a.png"
    assert "extra" not in df.columns


def test_imagefolder_bad_rows(tmp_path):
    root = tmp_path / "faces"
    png(root / "a.png")
    write(root / "metadata.csv", "file_name,label,gender\na.png,0,Martian\n")
    with pytest.raises(ManifestError, match=r"metadata.csv row 1 column 'gender': 'Martian' is not a gender"):
        import_imagefolder(root, tmp_path / "out")
    write(root / "metadata.csv", "file_name,label\na.png,0\na.png,1\n../x.png,1\n")
    with pytest.raises(ManifestError, match=r"row 2 column 'id': duplicate id 'faces/a.png'"):
        import_imagefolder(root, tmp_path / "out")
    write(root / "metadata.csv", "file_name,gender\na.png,male\n")
    with pytest.raises(ManifestError, match=r"column 'label': missing column"):
        import_imagefolder(root, tmp_path / "out")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_imports_and_reports_errors(ffpp, tmp_path, capsys):
    root, csv = ffpp
    out = tmp_path / "out"
    argv = ["import", "pgfdd", "--csv", str(csv), "--images-root", str(root), "--dataset", "ffpp"]
    assert main([*argv, "--split", "test", "--out", str(out), "--copy"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "manifest.parquet")
    assert read_manifest(out)["split"].unique().tolist() == ["test"]
    os.remove(root / "original/frames/000/1.png")
    assert main([*argv, "--split", "test", "--out", str(out)]) == 2
    assert "row 2 column 'img_path'" in capsys.readouterr().err
    assert main([*argv, "--split", "test", "--out", str(out), "--skip-bad", "--no-verify-images"]) == 0
    assert len(pd.read_parquet(out / "rejected.parquet")) == 1
    root2, js = deepfakebench_tree(tmp_path / "dfb")
    bench = ["import", "deepfakebench", "--json", str(js), "--images-root", str(root2.parent)]
    assert main([*bench, "--out", str(tmp_path / "o2"), "--label-map", "CelebDFv2_real=1"]) == 0
    assert main([*bench, "--out", str(tmp_path / "o2"), "--label-map", "oops"]) == 2
    assert "--label-map" in capsys.readouterr().err
    folder = tmp_path / "faces"
    png(folder / "a.png")
    write(folder / "metadata.csv", "file_name,label\na.png,real\n")
    assert main(["import", "imagefolder", "--root", str(folder), "--out", str(tmp_path / "o3")]) == 0


def test_pgfdd_group_table_choice_and_all_bad(ffpp, tmp_path):
    root, csv = ffpp
    with pytest.raises(ConfigError, match="--groups 6|8"):
        import_pgfdd(csv, root, tmp_path / "out", "aiface", "train")
    df = read_manifest(import_pgfdd(csv, root, tmp_path / "out", "aiface", "train", groups=8))
    assert set(df["source"]) == {"aiface"} and set(df["domain"]) == {"aiface"}
    bad = write(tmp_path / "bad.csv", f"{HEADER}\nmissing/0.png,0,1,1,-1,-1,0,0\n")
    with pytest.raises(ManifestError, match="every row is bad"):
        import_pgfdd(bad, root, tmp_path / "out", "ffpp", "train", options=ImportOptions(skip_bad=True))
    assert len(read_manifest(tmp_path / "out")) == 4  # the previous manifest is untouched
    assert pd.read_parquet(tmp_path / "out/rejected.parquet")["row"].tolist() == [1]
