"""The release folder: Hub layout that `datasets.load_dataset` reads with the right features and
counts, a dataset card whose YAML parses and lists the licences, and `--push` through the real
huggingface_hub code with only the network calls replaced."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_balance_lib import config, face_like, make_set, row, write_set

from fairforge.balance.release import ARROW, release_files, run_release
from fairforge.balance.run import run_balance
from fairforge.cli import main
from fairforge.config.balance import ReleaseConfig
from fairforge.manifest import read_manifest
from fairforge.paths import OWNER_MARKER
from fairforge.taxonomy import DEFAULT_TAXONOMY

TOKEN = "hf_test_token_never_printed"


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> Path:
    """A balanced DIR: 3 cells x (2 diffusion + 2 swaps), mixed with real frames of 8 people."""
    root = tmp_path_factory.mktemp("release")
    make_set(
        root / "gen",
        {("male", "Asian", "20-29"): 3, ("female", "Black", "50-59"): 3, ("female", "White", "0-2"): 3},
        {"diffusion": 0, "inswapper": 1},
    )
    gen = read_manifest(root / "gen")
    gen.loc[gen["method"] == "inswapper", "generator"] = "inswapper_128:cf9c774737f3a048"
    # the splits generate's plan gives: face i of each cell and the swap made on it share one
    index = gen["id"].str.rsplit("-", n=1).str[-1].astype(int)
    later = np.where(gen["gender"] == "female", np.where(gen["race"] == "Black", "test", "validation"), "test")
    gen["split"] = np.where(index == 0, "train", later)
    write_set(root / "gen", gen.to_dict("records"), {})
    real_rows, images = [], {}
    for p in range(8):
        for k in range(2):
            rid = f"ffpp-{p}-{k}"
            real_rows.append(
                row(
                    rid,
                    source="ffpp",
                    method="real",
                    identity=f"p{p}",
                    gender="male" if p % 2 else "female",
                    race="White",
                    age=None,
                )
            )
            images[rid] = face_like(500 + 2 * p + k, 64)
    write_set(root / "real", real_rows, images)
    cfg = config(
        target_per_cell=4,
        method_mix={"diffusion": 1, "inswapper": 1},
        cells=["male-Asian-20-29", "female-Black-50-59", "female-White-0-2"],
        mix={"real_ratio": 0.5},
    )
    run_balance(cfg, root / "gen", root / "dir", real=[root / "real"], progress=False)
    return root / "dir"


def front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_release_loads_with_load_dataset_with_features_and_counts(balanced, tmp_path):
    from datasets import ClassLabel, load_dataset, load_from_disk
    from datasets import Image as ImageFeature

    result = run_release(balanced, tmp_path / "rel", ReleaseConfig(include_real=True), DEFAULT_TAXONOMY)
    manifest = read_manifest(balanced)
    files = sorted(p.relative_to(tmp_path / "rel").as_posix() for p in (tmp_path / "rel" / "data").glob("*"))
    assert files == [f"data/{s}-00000-of-00001.parquet" for s in sorted(manifest["split"].unique())]
    dataset = load_dataset(str(tmp_path / "rel"), cache_dir=str(tmp_path / "hf-cache"))
    assert {s: len(d) for s, d in dataset.items()} == manifest["split"].value_counts().to_dict() == result.split_sizes
    features = dataset["train"].features
    assert isinstance(features["image"], ImageFeature)
    assert features["label"] == ClassLabel(names=["real", "fake"])
    assert features["race"].names == ["Asian", "White", "Black", "Others", "unknown"]
    assert features["age"].names[-1] == "unknown" and features["method"].names == ["diffusion", "inswapper", "real"]
    assert set(manifest.columns) | {"image"} == set(features)
    train = dataset["train"].to_pandas().drop(columns=["image"]).set_index("id")
    expected = manifest[manifest["split"] == "train"].set_index("id")
    assert (train["label"] == expected.loc[train.index, "label"]).all()
    age = features["age"].int2str(train["age"].tolist())
    assert age == expected.loc[train.index, "age"].fillna("unknown").tolist()
    first = dataset["train"][0]
    source = Image.open(balanced / expected.loc[first["id"], "path"]).convert("RGB")
    np.testing.assert_array_equal(np.asarray(first["image"].convert("RGB")), np.asarray(source))
    arrow = load_from_disk(str(tmp_path / "rel" / ARROW))
    assert {s: len(d) for s, d in arrow.items()} == result.split_sizes


def test_release_holds_what_fairforge_made_and_lists_real_rows_by_id(balanced, tmp_path):
    from datasets import load_dataset

    result = run_release(balanced, tmp_path / "rel", ReleaseConfig(), DEFAULT_TAXONOMY)
    manifest = read_manifest(balanced)
    real = manifest[manifest["source"] == "ffpp"]
    assert len(real) and result.referenced == len(real)
    dataset = load_dataset(str(tmp_path / "rel"), cache_dir=str(tmp_path / "hf-cache"))
    released = pd.concat([d.to_pandas() for d in dataset.values()])
    assert set(released["source"]) == {"fairforge-synth"}
    refs = pd.read_parquet(tmp_path / "rel" / "references" / "real.parquet")
    assert sorted(refs["id"]) == sorted(real["id"]) and set(refs.columns) >= {"id", "source", "split", "identity"}
    assert "path" not in refs.columns and "references/real.parquet" in result.files
    card = (tmp_path / "rel" / "README.md").read_text()
    assert "## Real data" in card and "listed by id" in card
    # with --include-real the real rows are shards again and the reference list goes
    again = run_release(balanced, tmp_path / "rel", ReleaseConfig(), DEFAULT_TAXONOMY, include_real=True)
    assert again.referenced == 0 and not (tmp_path / "rel" / "references" / "real.parquet").exists()
    assert sum(again.split_sizes.values()) == len(manifest)


def test_release_refuses_a_set_where_a_person_spans_two_splits(balanced, tmp_path):
    from fairforge.errors import ManifestError
    from fairforge.manifest import write_manifest

    manifest = read_manifest(balanced)
    counts = manifest["identity"].value_counts()
    person = counts.index[counts >= 2][0]
    rows = manifest.index[manifest["identity"] == person]
    manifest.loc[rows[0], "split"] = "test" if manifest.loc[rows[1], "split"] != "test" else "train"
    leaking = tmp_path / "leaking"
    leaking.mkdir()
    for path in manifest["path"]:
        target = leaking / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((balanced / path).read_bytes())
    write_manifest(manifest, leaking / "manifest.parquet")
    with pytest.raises(ManifestError, match="span several splits"):
        run_release(leaking, tmp_path / "rel", ReleaseConfig(), DEFAULT_TAXONOMY)
    assert not (tmp_path / "rel").exists()  # nothing written


def test_card_yaml_parses_and_lists_the_licences(balanced, tmp_path):
    result = run_release(balanced, tmp_path / "rel", ReleaseConfig(), DEFAULT_TAXONOMY)
    meta = front_matter(tmp_path / "rel" / "README.md")
    assert meta["license"] == "cc-by-nc-4.0"  # inswapper (insightface) and FF++ are non-commercial
    assert meta["task_categories"] == ["image-classification"] and "deepfake-detection" in meta["tags"]
    assert meta["size_categories"] == ["n<1K"]
    splits = [s for s in ("train", "validation", "test") if s in result.split_sizes]
    assert splits == ["train", "validation", "test"]  # the names the Hub and `datasets` use
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}
    ]
    assert [f["name"] for f in meta["dataset_info"]["features"]][:2] == ["image", "id"]
    licences = {c["name"]: (c["role"], c["license"], c["non_commercial"]) for c in meta["components"]}
    assert (
        licences["inswapper_128:cf9c774737f3a048"][2] is True
        and "insightface" in licences["inswapper_128:cf9c774737f3a048"][1]
    )
    assert licences["tiny:fairface"][0].startswith("attribute classifier") and licences["tiny:fairface"][2] is False
    assert licences["ffpp"] == ("real data", "FaceForensics++ terms of use: non-commercial research", True)
    body = (tmp_path / "rel" / "README.md").read_text()
    for heading in (
        "## Images per cell",
        "## How it was made",
        "## Licence and terms inherited",
        "## Intended use",
        "## Bias and limitations",
    ):
        assert heading in body
    assert "insightface's non-commercial research licence" in body
    permissive = run_release(
        balanced, tmp_path / "rel2", ReleaseConfig(license="other", save_to_disk=False), DEFAULT_TAXONOMY
    )
    assert front_matter(permissive.release_dir / "README.md")["license"] == "other"


class FakeHub:
    """The Hub's side of the HfApi calls a push makes: a repo as a dict of path -> bytes."""

    def __init__(self, fail_on_commit: int | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.commits: list[list[tuple[str, str]]] = []
        self.preuploaded: list[str] = []
        self.repos: list[dict] = []
        self.fail_on_commit = fail_on_commit

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
        from huggingface_hub import CommitOperationAdd, HfApi
        from huggingface_hub.hf_api import RepoFile

        hub = self

        def create_repo(api, repo_id, *, repo_type=None, private=None, exist_ok=False, **kwargs):  # type: ignore[no-untyped-def]
            hub.repos.append({"repo_id": repo_id, "repo_type": repo_type, "private": private, "token": api.token})

        def list_repo_tree(api, repo_id, path_in_repo=None, *, recursive=False, repo_type=None, **kwargs):  # type: ignore[no-untyped-def]
            for path, data in sorted(hub.files.items()):
                lfs = (
                    {"size": len(data), "oid": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
                    if path.endswith(".parquet")
                    else None
                )
                oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                yield RepoFile(path=path, size=len(data), oid=oid, lfs=lfs)

        def preupload_lfs_files(api, repo_id, additions, *, repo_type=None, **kwargs):  # type: ignore[no-untyped-def]
            hub.preuploaded += [op.path_in_repo for op in additions]

        def create_commit(api, repo_id, operations, *, commit_message, repo_type=None, **kwargs):  # type: ignore[no-untyped-def]
            if hub.fail_on_commit is not None and len(hub.commits) == hub.fail_on_commit:
                hub.fail_on_commit = None
                raise ConnectionError("connection reset")
            record = []
            for op in operations:
                if isinstance(op, CommitOperationAdd):
                    with op.as_file() as handle:
                        hub.files[op.path_in_repo] = handle.read()
                    record.append(("add", op.path_in_repo))
                else:
                    hub.files.pop(op.path_in_repo)
                    record.append(("delete", op.path_in_repo))
            hub.commits.append(record)

        for name, fn in (
            ("create_repo", create_repo),
            ("list_repo_tree", list_repo_tree),
            ("preupload_lfs_files", preupload_lfs_files),
            ("create_commit", create_commit),
        ):
            monkeypatch.setattr(HfApi, name, fn)
        return self


def test_push_commits_exactly_the_release_folder(balanced, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub().install(monkeypatch)
    rel = tmp_path / "rel"
    assert main(["release", "--in", str(balanced), "--out", str(rel), "--push", "me/fair-faces", "--private"]) == 0
    local = {f: (rel / f).read_bytes() for f in release_files(rel)}
    on_disk = sorted(
        p.relative_to(rel).as_posix()
        for p in rel.rglob("*")
        if p.is_file() and not p.relative_to(rel).as_posix().startswith(f"{ARROW}/") and p.name != OWNER_MARKER
    )
    assert sorted(local) == on_disk and "README.md" in local
    assert hub.files == local  # byte for byte, nothing more, nothing less
    assert hub.repos == [{"repo_id": "me/fair-faces", "repo_type": "dataset", "private": True, "token": TOKEN}]
    assert hub.preuploaded == [f for f in sorted(local) if f != "README.md"] + ["README.md"]
    assert hub.commits[-1][-1] == ("add", "README.md")
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and "load_dataset('me/fair-faces')" in local["README.md"].decode()


def test_push_resumes_and_removes_stale_shards(balanced, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub = FakeHub(fail_on_commit=1).install(monkeypatch)
    hub.files["data/train-00000-of-00007.parquet"] = b"an older release"
    rel = tmp_path / "rel"
    args = ["release", "--in", str(balanced), "--out", str(rel), "--push", "me/fair", "--set", "release.commit_every=1"]
    assert main(args) == 2  # one-line error, the push resumable
    assert len(hub.commits) == 1
    first = hub.commits[0][0][1]
    assert main(args) == 0
    added = [path for commit in hub.commits[1:] for kind, path in commit if kind == "add"]
    assert first not in added and len(added) == len(release_files(rel)) - 1  # resumed, not restarted
    assert hub.commits[-1][-1] == ("delete", "data/train-00000-of-00007.parquet")
    assert hub.files == {f: (rel / f).read_bytes() for f in release_files(rel)}
    commits = len(hub.commits)
    assert main(args) == 0 and len(hub.commits) == commits  # nothing left to push


def test_push_without_token_fails_cleanly(balanced, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    FakeHub().install(monkeypatch)
    assert main(["release", "--in", str(balanced), "--out", str(tmp_path / "rel"), "--push", "me/x"]) == 2
    assert "--push needs a Hugging Face token" in capsys.readouterr().err


def test_release_needs_splits(tmp_path):
    write_set(tmp_path / "dir", [row("a")], {"a": face_like(1)})
    assert main(["release", "--in", str(tmp_path / "dir"), "--out", str(tmp_path / "rel")]) == 2


def test_rerun_rewrites_only_changed_shards(balanced, tmp_path):
    cfg = ReleaseConfig(max_shard_size="100KB", save_to_disk=False)
    run_release(balanced, tmp_path / "rel", cfg, DEFAULT_TAXONOMY)
    shards = sorted((tmp_path / "rel" / "data").glob("*.parquet"))
    assert len(shards) > 3 and all(pd.read_parquet(p).shape[0] > 0 for p in shards)
    before = {p: p.stat().st_mtime_ns for p in shards}
    again = run_release(balanced, tmp_path / "rel", cfg, DEFAULT_TAXONOMY)
    assert {p: p.stat().st_mtime_ns for p in shards} == before
    assert pd.Series([f.split("/")[-1] for f in again.files if f.startswith("data/")]).str.contains("-of-").all()


@pytest.mark.slow
def test_kill_during_release_then_rerun_gives_the_same_output(balanced, tmp_path, tiny_cache):
    import os
    import signal
    import subprocess
    import sys
    import time

    def cmd(out: Path) -> list[str]:
        return ["release", "--in", str(balanced), "--out", str(out), "--set", "release.max_shard_size=30KB"]

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    victim = subprocess.Popen(
        [sys.executable, "-m", "fairforge", *cmd(tmp_path / "rel")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "rel" / "data").glob("*.parquet")):
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "rel" / "README.md").exists()  # it died while writing shards
    done = subprocess.run(
        [sys.executable, "-m", "fairforge", *cmd(tmp_path / "rel")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main(cmd(tmp_path / "clean" / "rel")) == 0  # same folder name: datasets records it

    def files(folder: Path) -> dict[str, bytes]:
        # save_to_disk's state.json holds a random fingerprint; the data and features files must match
        return {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "state.json"
        }

    resumed, clean = files(tmp_path / "rel"), files(tmp_path / "clean" / "rel")
    assert sorted(resumed) == sorted(clean) and len([f for f in resumed if f.startswith("data/")]) > 3
    assert [f for f in resumed if resumed[f] != clean[f]] == []
