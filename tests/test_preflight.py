"""`pipeline check` / `pipeline run`'s preflight: files with sha256 and sources, Hub cache, devices."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fairforge import tiny
from fairforge.cli import main
from fairforge.config import load_pipeline_config
from fairforge.errors import ConfigError
from fairforge.manifest import file_sha256
from fairforge.pipeline import preflight

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def empty_home_and_cache(tmp_path, monkeypatch):
    """`~` and the HF cache point at empty folders, so nothing on this machine is found by chance."""
    from huggingface_hub import constants

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(REPO / "pipelines.yaml", folder / "pipelines.yaml")
    return folder


def test_check_full_lists_files_sources_hub_ids_and_the_cuda_provider(tmp_path, monkeypatch, capsys):
    folder = _config_dir(tmp_path)
    monkeypatch.chdir(tmp_path)  # the working directory is not the config's folder
    code = main(["pipeline", "check", str(folder / "pipelines.yaml"), "--preset", "full"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"relative paths are read from {folder} (the config file's folder" in out
    assert (
        f"generate.inswapper.model: models/inswapper_128.onnx -> {folder}/models/inswapper_128.onnx is missing" in out
    )
    assert "inswapper_128.onnx (examples/in_swapper of github.com/deepinsight/insightface" in out
    assert "generate.detector.insightface[det_10g.onnx]" in out and "buffalo_l.zip from the model-zoo release" in out
    assert "res34_fair_align_multi_7_20190809.pt" in out and "github.com/dchen236/FairFace" in out
    assert (
        "MISSING generate.diffusion.model: stabilityai/stable-diffusion-xl-base-1.0 is not in the local HF cache" in out
    )
    assert "HF_HUB_OFFLINE is set" in out and "--include '*.json' '*.txt' '*.fp16.safetensors'" in out
    assert "MISSING train.model.pretrained: timm/efficientnet_b4.ra2_in1k is not in the local HF cache" in out
    assert "MISSING onnxruntime: CUDAExecutionProvider asked by generate.inswapper.providers" in out
    assert "generate.detector.insightface.providers" in out and "fairforge[gpu]" in out
    assert "MISSING GPUs: 0 visible" in out
    assert "missing piece(s)" in out.splitlines()[-1]


def test_the_tiny_preset_is_ready(tmp_path, capsys):
    folder = _config_dir(tmp_path)
    assert main(["pipeline", "check", str(folder / "pipelines.yaml"), "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "pipeline check: preset 'tiny': ready"
    assert "ok      GPUs: 0 visible" in out and "none needed" in out


def _inswapper_item(folder: Path, *overrides: str) -> preflight.Item:
    cfg = load_pipeline_config(folder / "pipelines.yaml", preset="full", overrides=overrides)
    report = preflight.check(cfg, folder)
    return next(item for item in report.items if item.key == "generate.inswapper.model")


def test_a_junk_inswapper_is_refused(tmp_path, tiny_cache):
    folder = _config_dir(tmp_path)
    (folder / "models").mkdir()
    junk = folder / "models" / "inswapper_128.onnx"
    junk.write_bytes(b"<html>404 Not Found</html>")  # what a failed download leaves behind
    item = _inswapper_item(folder)
    assert not item.ok and f"has sha256 {file_sha256(junk)}, the config pins e4a3f08c" in item.detail
    item = _inswapper_item(folder, "generate.inswapper.sha256=null")
    assert not item.ok and "is not an ONNX model" in item.detail
    shutil.copy(tiny.ensure("arcface"), junk)  # a real ONNX model, but not a swapper
    item = _inswapper_item(folder, "generate.inswapper.sha256=null")
    assert not item.ok and "is not an inswapper model" in item.detail
    shutil.copy(tiny.ensure("inswapper"), junk)
    item = _inswapper_item(folder, f"generate.inswapper.sha256={file_sha256(junk)}")
    assert item.ok and item.detail == "(sha256 verified)"
    item = _inswapper_item(folder, "generate.inswapper.sha256=null")
    assert item.ok and "not pinned" in item.detail


def _snapshot(cache: Path, repo: str, files: dict[str, str]) -> None:
    """The Hub cache layout huggingface_hub writes: models--org--name/{refs/main, snapshots/REV/...}."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("abc123")
    for name, text in files.items():
        path = root / "snapshots" / "abc123" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_hub_weights_are_looked_up_in_the_local_cache(tmp_path):
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }
    files = {
        "model_index.json": json.dumps(index),
        "unet/diffusion_pytorch_model.fp16.safetensors.index.json": "{}",
        "vae/diffusion_pytorch_model.fp16.safetensors": "",
        "text_encoder/model.safetensors": "",
    }
    _snapshot(cache, "org/sdxl", files)
    assert preflight.diffusers_cache_gaps("org/sdxl", None, "fp16") == ["text_encoder"]
    assert preflight.diffusers_cache_gaps("org/sdxl", None, None) == ["unet", "vae"]
    assert preflight.diffusers_cache_gaps("org/absent", None, None) is None
    _snapshot(cache, "timm/efficientnet_b4.ra2_in1k", {"model.safetensors": ""})
    cfg = load_pipeline_config(REPO / "pipelines.yaml", preset="full")
    [item] = preflight.check_timm(cfg)
    assert item.ok and item.value == "timm/efficientnet_b4.ra2_in1k"
    classifiers = [
        "balance.classifiers=[{backend: transformers, path: org/age-vit}, {backend: timm, path: hf-hub:org/race}]"
    ]
    cfg = load_pipeline_config(REPO / "pipelines.yaml", preset="full", overrides=classifiers)
    assert [(i.value, i.ok) for i in preflight.check_classifiers(cfg, REPO)] == [
        ("org/age-vit", False),
        ("org/race", False),
    ]
    _snapshot(cache, "org/age-vit", {"config.json": "{}", "model.safetensors": ""})
    assert [i.ok for i in preflight.check_classifiers(cfg, REPO)] == [True, False]


def test_online_an_uncached_id_is_a_download_not_a_problem(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    cfg = load_pipeline_config(REPO / "pipelines.yaml", preset="full")
    [item] = preflight.check_diffusion(cfg, REPO)
    assert item.ok and "downloaded at start" in item.detail


def test_pipeline_run_stops_before_any_stage_with_the_same_list(tmp_path, capsys):
    folder = _config_dir(tmp_path)
    code = main(["pipeline", "run", str(folder / "pipelines.yaml"), "--preset", "full", "--out", str(tmp_path / "run")])
    err = capsys.readouterr()
    assert code != 0
    text = err.out + err.err
    assert "preset 'full' needs" in text and "generate.inswapper.model" in text and "CUDAExecutionProvider" in text
    assert not (tmp_path / "run" / "generate").exists()


def test_full_fast_extends_full():
    fast = load_pipeline_config(REPO / "pipelines.yaml", preset="full-fast")
    full = load_pipeline_config(REPO / "pipelines.yaml", preset="full")
    assert fast.generate.diffusion.model == "stabilityai/sdxl-turbo" and fast.generate.diffusion.steps == 4
    assert fast.generate.diffusion.guidance == 0.0 and fast.generate.diffusion.variant == "fp16"
    assert full.generate.diffusion.variant == "fp16"
    assert fast.generate.inswapper == full.generate.inswapper and fast.balance == full.balance


def test_a_preset_cycle_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("presets:\n  a: {extends: b}\n  b: {extends: a}\n  c: {extends: nope}\n")
    with pytest.raises(ConfigError, match=r"presets\.a\.extends: a cycle \(a -> b -> a\)"):
        load_pipeline_config(path, preset="a")
    with pytest.raises(ConfigError, match=r"presets\.c\.extends: unknown preset 'nope'"):
        load_pipeline_config(path, preset="c")
