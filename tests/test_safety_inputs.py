"""Import: links out of the images root, CSV structure, type errors located in the input, `--out`."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fairforge.cli import main
from fairforge.errors import ManifestError
from fairforge.importers import ImportOptions, import_imagefolder, import_pgfdd
from fairforge.manifest import read_manifest
from fairforge.paths import PathError, safe_component


def png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (value, 10, 20)).save(path)
    return path


def test_safe_component() -> None:
    assert safe_component("ffpp", "source") == "ffpp"
    for bad in ("", "..", ".", "a/b", "../x", "a\\b", "c:", "a\nb", None, 3):
        with pytest.raises(PathError, match="source"):
            safe_component(bad, "source")


@pytest.mark.parametrize("place", ["link", "copy"])
def test_import_does_not_follow_a_link_out_of_the_images_root(tmp_path: Path, place: str) -> None:
    root = tmp_path / "faces"
    png(root / "a.png")
    secret = png(tmp_path / "private" / "me.png", 9)
    os.symlink(secret, root / "b.png")
    (root / "metadata.csv").write_text("file_name,label\na.png,0\nb.png,1\n")
    with pytest.raises(ManifestError, match=r"row 2 column 'file_name': 'b.png' is a link to .*outside --images-root"):
        import_imagefolder(root, tmp_path / "out", options=ImportOptions(place=place))
    out = tmp_path / "out2"
    import_imagefolder(root, out, options=ImportOptions(place=place, skip_bad=True))
    assert read_manifest(out)["path"].tolist() == ["images/a.png"]
    followed = import_imagefolder(root, tmp_path / "out3", options=ImportOptions(place=place, follow_links=True))
    assert len(read_manifest(followed)) == 2


def test_linked_import_is_readable_by_training(tmp_path: Path) -> None:
    """`--link` makes symlinks out of OUT on purpose: the owner marker lets readers follow exactly those."""
    from fairforge.config.train import DataConfig
    from fairforge.taxonomy import DEFAULT_TAXONOMY
    from fairforge.train.data import ManifestDataset, data_info, load_manifests

    root = tmp_path / "faces"
    png(root / "a.png")
    png(root / "b.png", 3)
    (root / "metadata.csv").write_text("file_name,label,gender,race\na.png,0,male,White\nb.png,1,male,White\n")
    manifest = import_imagefolder(root, tmp_path / "out")
    assert (tmp_path / "out" / "images" / "a.png").is_symlink()
    frame = load_manifests([str(manifest)], None, "data.train", DEFAULT_TAXONOMY)
    dataset = ManifestDataset(
        frame, data_info(frame, DEFAULT_TAXONOMY), DataConfig(train=[str(manifest)], resolution=8)
    )
    assert dataset[1]["image"].shape == (3, 8, 8)
    os.symlink(png(tmp_path / "elsewhere.png"), tmp_path / "out" / "images" / "c.png")  # not made by the import
    frame = pd.concat([frame, frame.iloc[:1].assign(id="c", path="images/c.png")], ignore_index=True)
    frame.attrs.update(root=str(tmp_path / "out"), files=[str(manifest)])
    dataset = ManifestDataset(
        frame, data_info(frame, DEFAULT_TAXONOMY), DataConfig(train=[str(manifest)], resolution=8)
    )
    with pytest.raises(ManifestError, match=r"row 0 column 'path'.*outside the manifest's folder"):
        dataset[2]


def test_csv_extra_field_names_its_row_and_a_duplicate_column_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    png(root / "a.png")
    png(root / "b.png")
    (root / "metadata.csv").write_text("file_name,label,gender\na.png,0,male\nb.png,1,male,EXTRA\n")
    with pytest.raises(ManifestError, match=r"metadata.csv row 2: 4 fields, the header has 3.*\['EXTRA'\]"):
        import_imagefolder(root, tmp_path / "out")
    (root / "metadata.csv").write_text("file_name,label,label\na.png,0,1\n")
    with pytest.raises(ManifestError, match=r"column 'label': column 'label' appears twice"):
        import_imagefolder(root, tmp_path / "out")


def test_imagefolder_type_errors_name_the_input_row_and_skip_bad_skips_them(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    for name in ("a", "b", "c"):
        png(root / f"{name}.png")
    (root / "metadata.csv").write_text(
        "file_name,label,seed,pred_gender_conf,source\n"
        "a.png,0,1,0.5,ffpp\n"
        "b.png,1,99999999999999999999999,0.5,ffpp\n"
        "c.png,1,2,2.5,../../etc\n"
    )
    with pytest.raises(ManifestError, match=r"metadata.csv row 2 column 'seed': expected int64"):
        import_imagefolder(root, tmp_path / "out")
    manifest = import_imagefolder(root, tmp_path / "out", options=ImportOptions(skip_bad=True))
    assert read_manifest(manifest)["id"].tolist() == ["ffpp/a.png"]
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert rejected["row"].tolist() == [2, 3]
    assert "pred_gender_conf" in rejected["reason"].iloc[1] and "source" in rejected["reason"].iloc[1]


def test_out_naming_a_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    root = tmp_path / "faces"
    png(root / "a.png")
    (root / "metadata.csv").write_text("file_name,label\na.png,0\n")
    target = tmp_path / "taken"
    target.write_text("a file of the user's")
    assert main(["import", "imagefolder", "--root", str(root), "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"fairforge import: error: --out {target}: exists and is not a folder"
    assert target.read_text() == "a file of the user's"
    assert main(["generate", "--out", str(target)]) == 2
    assert capsys.readouterr().err.strip() == f"fairforge generate: error: --out {target}: exists and is not a folder"


def test_import_does_not_replace_a_foreign_manifest(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    png(root / "a.png")
    (root / "metadata.csv").write_text("file_name,label\na.png,0\n")
    theirs = tmp_path / "out"
    theirs.mkdir()
    (theirs / "manifest.parquet").write_bytes(b"someone else's")
    with pytest.raises(PathError, match="manifest.parquet fairforge did not write"):
        import_imagefolder(root, theirs)
    assert (theirs / "manifest.parquet").read_bytes() == b"someone else's"
    import_imagefolder(root, root)  # in place beside the user's images: allowed, and a rerun too
    import_imagefolder(root, root)
    assert len(read_manifest(root)) == 1


def test_pgfdd_extra_column_in_one_row(tmp_path: Path) -> None:
    root = tmp_path / "data"
    png(root / "x/0.png")
    csv = tmp_path / "train.csv"
    header = "img_path,label,ismale,isasian,iswhite,isblack,intersec_label,spe_label"
    csv.write_text(f"{header}\nx/0.png,0,1,-1,1,-1,1,0\nx/0.png,0,1,-1,1,-1,1,0,7\n")
    with pytest.raises(ManifestError, match=r"train.csv row 2: 9 fields, the header has 8"):
        import_pgfdd(csv, root, tmp_path / "out", "ffpp", "train")
