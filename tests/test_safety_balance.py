"""Balance and release write only in folders they own, and only the files they wrote."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from test_balance_lib import config, face_like, make_set, row, write_set

from fairforge.balance.release import release_files, run_release
from fairforge.balance.run import run_balance
from fairforge.config.balance import ReleaseConfig
from fairforge.errors import FairforgeError, ManifestError
from fairforge.manifest import read_manifest
from fairforge.paths import PathError
from fairforge.taxonomy import DEFAULT_TAXONOMY

CELLS = {("male", "Asian", "20-29"): 3, ("female", "Black", "50-59"): 3}


def _cfg():  # type: ignore[no-untyped-def]
    return config(
        target_per_cell=3,
        method_mix={"diffusion": 1},
        cells=["male-Asian-20-29", "female-Black-50-59"],
        mix={"real_ratio": None},
    )


def test_source_with_dot_dot_is_refused_before_anything_is_written(tmp_path: Path, tiny_cache) -> None:
    make_set(tmp_path / "gen", CELLS, {"diffusion": 0})
    victim = tmp_path / "x" / "img" / "r-0.png"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"the user's file")
    real = [row("r-0", source="../../../x", method="real", identity="p0")]
    write_set(tmp_path / "real", real, {"r-0": face_like(7, 32)})
    with pytest.raises(ManifestError, match=r"real/manifest.parquet row 0 column 'source'"):
        run_balance(_cfg(), tmp_path / "gen", tmp_path / "out", real=[tmp_path / "real"], progress=False)
    assert victim.read_bytes() == b"the user's file"


def test_balance_refuses_out_equal_to_or_inside_in_and_foreign_folders(tmp_path: Path, tiny_cache) -> None:
    gen = tmp_path / "gen"
    make_set(gen, CELLS, {"diffusion": 0})
    before = sorted(p.relative_to(gen) for p in gen.rglob("*"))
    for out in (gen, gen / "sub"):
        with pytest.raises(PathError, match="input folder"):
            run_balance(_cfg(), gen, out, progress=False)
    assert sorted(p.relative_to(gen) for p in gen.rglob("*")) == before
    foreign = tmp_path / "mine"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "holiday.jpg").write_bytes(b"photo")
    with pytest.raises(PathError, match="holds files fairforge did not write"):
        run_balance(_cfg(), gen, foreign, progress=False)
    assert (foreign / "images" / "holiday.jpg").read_bytes() == b"photo"


def test_balance_rerun_deletes_only_images_it_placed(tmp_path: Path, tiny_cache) -> None:
    gen, out = tmp_path / "gen", tmp_path / "out"
    make_set(gen, CELLS, {"diffusion": 0})
    run_balance(_cfg(), gen, out, progress=False)
    placed = read_manifest(out)["path"].tolist()
    stray = out / "images" / "notes.txt"
    stray.write_text("mine")
    frame = read_manifest(gen)
    write_set(gen, frame.iloc[1:].to_dict("records"), {})  # one image fewer: its placed copy goes
    run_balance(_cfg(), gen, out, progress=False)
    now = read_manifest(out)["path"].tolist()
    gone = set(placed) - set(now)
    assert len(gone) == 1 and not (out / gone.pop()).exists()
    assert stray.read_text() == "mine"


def test_truncated_image_is_rejected_on_rerun_not_a_report_crash(tmp_path: Path, tiny_cache) -> None:
    gen, out = tmp_path / "gen", tmp_path / "out"
    make_set(gen, CELLS, {"diffusion": 0})
    frame = read_manifest(gen)
    frame["sha256"] = [__import__("hashlib").sha256((gen / p).read_bytes()).hexdigest() for p in frame["path"]]
    write_set(gen, frame.to_dict("records"), {})
    run_balance(_cfg(), gen, out, progress=False)
    target = gen / frame["path"].iloc[0]
    target.write_bytes(target.read_bytes()[:100])
    result = run_balance(_cfg(), gen, out, progress=False)
    assert frame["id"].iloc[0] not in set(result.manifest["id"])
    assert result.rejected.set_index("id").loc[frame["id"].iloc[0], "reason"] == "unreadable"


def test_symlink_out_of_the_generated_folder_is_not_followed(tmp_path: Path, tiny_cache) -> None:
    gen, out = tmp_path / "gen", tmp_path / "out"
    make_set(gen, CELLS, {"diffusion": 0})
    secret = tmp_path / "secret.png"
    secret.write_bytes((gen / read_manifest(gen)["path"].iloc[0]).read_bytes())
    first = gen / read_manifest(gen)["path"].iloc[0]
    first.unlink()
    os.symlink(secret, first)
    result = run_balance(_cfg(), gen, out, progress=False)
    assert read_manifest(gen)["id"].iloc[0] not in set(result.manifest["id"])


def _release_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dir"
    rows = [
        row(f"r{i}", path=f"img/r{i}.png", split=split, method="real", identity=f"p{i}")
        for i, split in enumerate(["train", "val", "test"])
    ]
    write_set(folder, rows, {r["id"]: face_like(i, 32) for i, r in enumerate(rows)})
    return folder


def test_release_keeps_foreign_files_and_pushes_only_its_own(tmp_path: Path) -> None:
    folder = _release_dir(tmp_path)
    rel = tmp_path / "rel"
    with pytest.raises(PathError, match="input folder"):
        run_release(folder, folder, ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    (tmp_path / "theirs" / "data").mkdir(parents=True)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "theirs" / "data" / "train-00000-of-00009.parquet")
    with pytest.raises(PathError, match="did not write"):
        run_release(folder, tmp_path / "theirs", ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    assert (tmp_path / "theirs" / "data" / "train-00000-of-00009.parquet").is_file()
    run_release(folder, rel, ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    pd.DataFrame({"a": [1]}).to_parquet(rel / "data" / "train-00003-of-00009.parquet")  # a user's file
    (rel / "secrets.txt").write_text("token")
    os.symlink(tmp_path / "dir" / "manifest.parquet", rel / "data" / "linked.parquet")
    result = run_release(folder, rel, ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    assert (rel / "data" / "train-00003-of-00009.parquet").is_file()
    assert (
        sorted(result.files)
        == sorted(release_files(rel))
        == [
            "README.md",
            "data/test-00000-of-00001.parquet",
            "data/train-00000-of-00001.parquet",
            "data/validation-00000-of-00001.parquet",
        ]
    )


def test_release_does_not_embed_a_linked_secret(tmp_path: Path) -> None:
    folder = _release_dir(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET_ACCESS_KEY=abc\n")
    (folder / "img" / "r1.png").unlink()
    os.symlink(secret, folder / "img" / "r1.png")
    with pytest.raises(ManifestError, match=r"row 1 column 'path'.*outside"):
        run_release(folder, tmp_path / "rel", ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    os.environ["FAIRFORGE_FOLLOW_LINKS"] = "1"  # followed on request, and still decoded: not an image
    try:
        with pytest.raises(ManifestError, match=r"row 1 column 'path'.*not a readable image"):
            run_release(folder, tmp_path / "rel", ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    finally:
        del os.environ["FAIRFORGE_FOLLOW_LINKS"]
    for shard in (tmp_path / "rel" / "data").glob("*.parquet"):
        assert b"AWS_SECRET" not in shard.read_bytes()


def test_release_scratch_of_a_killed_save_is_swept(tmp_path: Path) -> None:
    folder = _release_dir(tmp_path)
    rel = tmp_path / "rel"
    run_release(folder, rel, ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    (rel / ".scratch-abc123" / "arrow").mkdir(parents=True)  # what a kill during save_to_disk leaves
    run_release(folder, rel, ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    assert not list(rel.glob(".scratch-*"))


def test_card_escapes_manifest_values(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    rows = [
        row(f"r{i}", path=f"img/r{i}.png", split=s, method="<script>alert(1)</script>", identity=f"p{i}", label=1)
        for i, s in enumerate(["train", "val", "test"])
    ]
    rows.append(row("r9", path="img/r9.png", split="train", method="real", generator='<img src=x onerror="x()">'))
    write_set(folder, rows, {r["id"]: face_like(i, 32) for i, r in enumerate(rows)})
    (folder / "provenance.json").write_text('{"generators": ["<img src=x onerror=\\"x()\\">"], "methods": ["a|b"]}')
    run_release(folder, tmp_path / "rel", ReleaseConfig(save_to_disk=False), DEFAULT_TAXONOMY)
    body = (tmp_path / "rel" / "README.md").read_text().split("\n---\n", 1)[1]
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "a\\|b" in body


def test_release_config_and_push_errors_are_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from fairforge.cli import main

    folder = _release_dir(tmp_path)
    for size in ("0", "-5MB"):
        with pytest.raises(FairforgeError, match=r"release.max_shard_size: expected a positive size"):
            run_release(folder, tmp_path / "rel", ReleaseConfig(max_shard_size=size), DEFAULT_TAXONOMY)
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    args = ["release", "--in", str(folder), "--out", str(tmp_path / "rel"), "--push", "me/x"]
    args += ["--set", "release.save_to_disk=false"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fairforge release: error: --push me/x: offline mode is on") and "Traceback" not in err

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    class Response:
        status_code = 401
        headers: dict = {}
        request = None

        def json(self):  # type: ignore[no-untyped-def]
            return {}

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise HfHubHTTPError("401 Unauthorized", response=Response())

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the Hub refused the token (HTTP 401)" in err and "hf_x" not in err
