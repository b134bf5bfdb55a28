"""Before any work: is everything the run needs here? One list, with where to get each missing piece.

Why: a full run takes hours on GPUs; discovering in stage 4 that the FairFace checkpoint is missing,
at train start that the timm weights cannot be downloaded offline, or after the first image that
onnxruntime has no CUDA wastes all of it. The check covers:

- **local files** the config names (found by key name and by shape: an absolute or ./ path, or a
  weights/table file extension), resolved against the config file's folder (the stages run
  there); a pinned sha256 is verified, and an ONNX file must parse (the swapper must have
  inswapper's two 128x128 inputs), so a truncated download or a junk file is refused here;
- the **insightface pack** of the insightface detector: the files the run loads, their pins;
- **Hub ids** (the diffusion checkpoint and its weights variant, timm's pretrained weights, hub
  classifiers): whether they are in the local Hugging Face cache. Missing ones are downloaded at
  start, which an offline machine (`HF_HUB_OFFLINE=1`) cannot do: then they are problems;
- the **devices**: the GPU count when the config asks for a GPU, and onnxruntime's CUDA provider
  when a model is to run on it.

`pipeline check` prints the report and exits 1 when anything is missing; `pipeline run` raises
the same list as one `MissingModelError` before the first stage.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairforge.errors import MissingModelError

log = logging.getLogger(__name__)

PATH_KEYS = ("path", "file", "root", "checkpoint", "csv", "json", "images_root", "model_file", "pack")
FILE_SUFFIXES = (".onnx", ".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".csv", ".json", ".jsonl", ".dat", ".zip")
CUDA = "CUDAExecutionProvider"

INSWAPPER_SOURCE = (
    "insightface's inswapper_128.onnx (examples/in_swapper of github.com/deepinsight/insightface; no longer "
    "distributed by insightface, non-commercial research licence): supply a copy whose sha256 matches the pin; "
    "fairforge never downloads it"
)
BUFFALO_SOURCE = (
    "insightface's buffalo_l model pack (non-commercial research licence): buffalo_l.zip from the model-zoo "
    "release of github.com/deepinsight/insightface, unzipped into ROOT/models/buffalo_l"
)
FAIRFACE_SOURCE = (
    "the FairFace checkpoint res34_fair_align_multi_7_20190809.pt (the README of github.com/dchen236/FairFace links it)"
)

#: substring of a path -> where a user gets it
WHERE_TO_GET: dict[str, str] = {
    "inswapper": INSWAPPER_SOURCE,
    "buffalo": BUFFALO_SOURCE,
    "fair": FAIRFACE_SOURCE,
    "shape_predictor": "dlib's 68-point predictor; `pip install face-recognition-models` ships it",
    ".csv": "the PG-FDD/DAW-FDD demographic annotation CSVs (github.com/Purdue-M2/Fairness-Generalization) "
    "and the dataset's frames (FF++, Celeb-DF, DFDC, DFD: request access from their authors)",
    ".json": "DeepfakeBench's dataset JSON (github.com/SCLBD/DeepfakeBench, preprocessing/rearrange.py)",
}

#: The buffalo_l files the insightface detector loads (FaceAnalysis' allowed modules).
PACK_FILES = ("det_10g.onnx", "1k3d68.onnx")


@dataclass
class Item:
    """One thing the run needs: `ok` when it is there (and verified), else `detail` says what is wrong."""

    section: str  # files | hub | devices
    key: str
    value: str
    ok: bool
    detail: str
    hint: str = ""

    def line(self) -> str:
        mark = "ok     " if self.ok else "MISSING"
        text = f"  {mark} {self.key}: {self.value} {self.detail}"
        return text + (f"\n            get it: {self.hint}" if self.hint and not self.ok else "")


@dataclass
class Report:
    """Every item checked; `problems` are the ones that would stop the run."""

    config_dir: Path
    items: list[Item] = field(default_factory=list)

    @property
    def problems(self) -> list[Item]:
        return [item for item in self.items if not item.ok]

    def render(self) -> str:
        lines = [f"relative paths are read from {self.config_dir} (the config file's folder; the stages run there)"]
        titles = {
            "files": "local files (sha256 verified where pinned)",
            "hub": f"Hugging Face Hub (local cache: {_hub_cache()})",
            "devices": "devices",
        }
        for section, title in titles.items():
            items = [item for item in self.items if item.section == section]
            if items:
                lines.append(f"{title}:")
                lines += [item.line() for item in items]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- files


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _looks_local(key: str, value: str) -> bool:
    if value.startswith(("tiny", "hf-hub:", "timm/", "local-dir:", "http://", "https://")):
        return False
    last = key.rsplit(".", 1)[-1].split("[", 1)[0]
    explicit = value.startswith(("/", "./", "../", "~")) or value.lower().endswith(FILE_SUFFIXES)
    return explicit or (last in PATH_KEYS and (os.sep in value or "." in value))


def _hint(value: str) -> str:
    low = value.lower()
    for needle, where in WHERE_TO_GET.items():
        if needle in low:
            return where
    return "a local file or folder the config names"


def resolve(value: str, base_dir: Path | None) -> Path:
    """A config path as the stages read it: `~` expanded, relative paths against `base_dir`."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _local_values(
    config: dict[str, Any], defaults: dict[str, Any] | None, skip_prefixes: tuple[str, ...]
) -> Iterator[tuple[str, str]]:
    default_values = dict(_walk(defaults)) if defaults else {}
    for key, value in _walk(config):
        if not isinstance(value, str) or not value or key.startswith(skip_prefixes):
            continue
        if default_values.get(key) == value:
            continue
        if _looks_local(key, value):
            yield key, value


def missing_pieces(
    config: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    skip_prefixes: tuple[str, ...] = ("train.output_dir", "cache_dir"),
    base_dir: Path | None = None,
) -> list[str]:
    """One line per missing local file: `key.path: PATH is missing (where to get it)`.

    Values equal to the config model's defaults are not checked: a default location (e.g.
    insightface's `~/.insightface`) matters only to a backend the config selects, and a preset
    that selects it names the path explicitly.
    """
    return [
        f"{key}: {value} is missing ({_hint(value)})"
        for key, value in _local_values(config, defaults, skip_prefixes)
        if not resolve(value, base_dir).exists()
    ]


def _pin(config: dict[str, Any], key: str) -> str | None:
    """The sha256 pinned beside a file key: `x.model` -> `x.sha256`, `x.recognition` -> `x.recognition_sha256`."""
    parent, _, last = key.rpartition(".")
    node: Any = config
    for part in parent.split(".") if parent else []:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    pin = node.get("sha256") if last == "model" else node.get(f"{last}_sha256")
    return pin if isinstance(pin, str) else None


def _onnx_problem(path: Path, key: str) -> str | None:
    """Why `path` is not a usable ONNX model (None when it is): it must parse; a swapper needs its inputs."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (protobuf raises several types on junk)
        return f"is not an ONNX model ({type(exc).__name__})"
    if "inswapper" in key:
        dims = [[d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
        if len(dims) != 2 or dims[0][-2:] != [128, 128]:
            return f"is not an inswapper model (inputs {dims}; expected target [n,3,128,128] and source [n,512])"
    return None


def check_file(path: Path, key: str, value: str, pin: str | None, hint: str) -> Item:
    """One local file or folder: there, matching its pin, and (ONNX) a model of the expected kind."""
    from fairforge.manifest import file_sha256

    if not path.exists():
        return Item("files", key, value, False, f"-> {path} is missing", hint)
    if path.is_dir():
        return Item("files", key, value, True, "(folder)")
    digest = file_sha256(path)
    if pin and digest.lower() != pin.lower():
        return Item("files", key, value, False, f"has sha256 {digest}, the config pins {pin}", hint)
    if path.suffix.lower() == ".onnx" and (problem := _onnx_problem(path, key)):
        return Item("files", key, value, False, problem, hint)
    return Item("files", key, value, True, "(sha256 verified)" if pin else f"(sha256 {digest[:16]}..., not pinned)")


def check_files(
    config: dict[str, Any],
    defaults: dict[str, Any] | None,
    base_dir: Path,
    skip_prefixes: tuple[str, ...] = ("train.output_dir", "cache_dir"),
) -> list[Item]:
    return [
        check_file(resolve(value, base_dir), key, value, _pin(config, key), _hint(value))
        for key, value in _local_values(config, defaults, skip_prefixes)
    ]


def check_insightface_pack(cfg: Any, base_dir: Path) -> list[Item]:
    """The pack of the insightface detector: the files it loads (and the recognition model), pins verified."""
    generate = cfg.generate
    if generate.detector.backend != "insightface" or generate.detector.insightface.root.startswith("tiny:"):
        return []
    insight = generate.detector.insightface
    folder = f"{insight.root}/models/{insight.name}"
    pack = resolve(folder, base_dir)
    needed = list(PACK_FILES)
    if "inswapper" in generate.methods and not generate.inswapper.recognition:
        needed.append("w600k_r50.onnx")
    needed += [name for name in insight.sha256 if name not in needed]
    key = "generate.detector.insightface"
    return [
        check_file(pack / name, f"{key}[{name}]", f"{folder}/{name}", insight.sha256.get(name), BUFFALO_SOURCE)
        for name in needed
    ]


# ------------------------------------------------------------------------------------------ hub


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cached(repo_id: str, filename: str, revision: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return found if isinstance(found, str) else None


def _cached_any(repo_id: str, names: list[str], revision: str | None) -> bool:
    return any(_cached(repo_id, name, revision) for name in names)


#: Pipeline components without weights (class-name endings).
WEIGHTLESS = ("Scheduler", "Tokenizer", "TokenizerFast", "FeatureExtractor", "ImageProcessor", "Processor")


def diffusers_cache_gaps(repo_id: str, revision: str | None, variant: str | None) -> list[str] | None:
    """The model components whose weights are not cached ([] when all are; None: no model_index.json)."""
    index = _cached(repo_id, "model_index.json", revision)
    if index is None:
        return None
    weight_names = {"diffusers": "diffusion_pytorch_model", "transformers": "model"}
    gaps = []
    for component, spec in json.loads(Path(index).read_text()).items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] not in weight_names:
            continue
        if not spec[1] or str(spec[1]).endswith(WEIGHTLESS):
            continue
        stem = weight_names[spec[0]] + (f".{variant}" if variant else "")
        names = [f"{component}/{stem}.safetensors", f"{component}/{stem}.safetensors.index.json"]
        if not _cached_any(repo_id, names, revision):
            gaps.append(component)
    return gaps


def _hub_item(key: str, repo_id: str, cached: bool, detail: str, command: str) -> Item:
    if cached:
        return Item("hub", key, repo_id, True, f"({detail})")
    offline = _offline()
    status = "is not in the local HF cache" + (
        "; HF_HUB_OFFLINE is set, so the run cannot download it" if offline else "; downloaded at start"
    )
    return Item("hub", key, repo_id, not offline, status + (f" [{detail}]" if detail else ""), command)


def _download(repo_id: str, include: str = "") -> str:
    return f"hf download {repo_id}{include} (on a machine with internet, into the same HF cache)"


def check_diffusion(cfg: Any, base_dir: Path) -> list[Item]:
    d = cfg.generate.diffusion
    uses = "diffusion" in cfg.generate.methods or cfg.generate.pool.source == "diffusion"
    if not uses or d.model.startswith("tiny:") or resolve(d.model, base_dir).is_dir():
        return []
    gaps = diffusers_cache_gaps(d.model, d.revision, d.variant)
    variant = f"variant {d.variant}" if d.variant else "full-precision weights"
    include = f" --include '*.json' '*.txt' '*.{d.variant}.safetensors'" if d.variant else ""
    if gaps is None:
        return [_hub_item("generate.diffusion.model", d.model, False, variant, _download(d.model, include))]
    detail = f"{variant}, every component" if not gaps else f"{variant} of {gaps} missing"
    return [_hub_item("generate.diffusion.model", d.model, not gaps, detail, _download(d.model, include))]


def timm_weights_repo(backbone: str, pretrained: bool | str) -> str | None:
    """The Hub repo timm downloads the pretrained weights from (None: no download)."""
    if pretrained is False or backbone.startswith(("local-dir:", "tiny")):
        return None
    if isinstance(pretrained, str):
        if pretrained.endswith((".safetensors", ".pth", ".bin")) or os.path.exists(os.path.expanduser(pretrained)):
            return None
        return pretrained.removeprefix("hf-hub:")
    if backbone.startswith("hf-hub:"):
        return backbone.removeprefix("hf-hub:")
    import timm

    try:
        return timm.models.get_pretrained_cfg(backbone).hf_hub_id
    except Exception:  # noqa: BLE001 (an unknown name fails at model creation with timm's own message)
        return None


def check_timm(cfg: Any) -> list[Item]:
    model = cfg.train.model
    repo = timm_weights_repo(model.backbone, model.pretrained)
    if repo is None:
        return []
    cached = _cached_any(repo, ["model.safetensors", "pytorch_model.bin"], None)
    detail = f"timm pretrained weights of {model.backbone}"
    return [_hub_item("train.model.pretrained", repo, cached, detail, _download(repo))]


def check_classifiers(cfg: Any, base_dir: Path) -> list[Item]:
    items = []
    for i, classifier in enumerate(cfg.balance.classifiers):
        path = classifier.path or ""
        if classifier.backend == "fairface" or not path or path.startswith(("tiny:", "local-dir:")):
            continue
        if resolve(path.removeprefix("hf-hub:"), base_dir).exists():
            continue
        repo = path.removeprefix("hf-hub:")
        names = ["model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"]
        cached = _cached_any(repo, names, None) and (
            classifier.backend == "timm" or _cached(repo, "config.json", None) is not None
        )
        key = f"balance.classifiers[{i}].path"
        items.append(_hub_item(key, repo, cached, f"{classifier.backend} classifier", _download(repo)))
    return items


# -------------------------------------------------------------------------------------- devices


def onnx_providers_asked(cfg: Any) -> dict[str, list[str]]:
    """Config key -> the onnxruntime providers a model the run loads is asked to use."""
    generate = cfg.generate
    asked = {}
    if "generate" in cfg.stages and "inswapper" in generate.methods:
        asked["generate.inswapper.providers"] = list(generate.inswapper.providers)
    if "generate" in cfg.stages and generate.detector.backend == "insightface":
        asked["generate.detector.insightface.providers"] = list(generate.detector.insightface.providers)
    if "balance" in cfg.stages and cfg.balance.identity.model:
        asked["balance.identity.providers"] = list(cfg.balance.identity.providers)
    return asked


def needs_gpu(cfg: Any) -> bool:
    """The config asks for a GPU: CUDA for an ONNX model, half precision, or several training processes."""
    asked = any(CUDA in providers for providers in onnx_providers_asked(cfg).values())
    half = cfg.generate.diffusion.dtype in ("float16", "bfloat16") or cfg.train.mixed_precision in ("fp16", "bf16")
    return asked or (half and not cfg.launch.cpu) or (cfg.launch.num_processes > 1 and not cfg.launch.cpu)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_devices(cfg: Any) -> list[Item]:
    import torch

    items = []
    gpus = torch.cuda.device_count()
    wanted = max(1, cfg.launch.num_processes) if needs_gpu(cfg) else 0
    build = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}"
    items.append(
        Item(
            "devices",
            "GPUs",
            str(gpus),
            gpus >= wanted,
            f"visible ({build}); the config needs {wanted}" if wanted else f"visible ({build}); none needed",
            "a machine with NVIDIA GPUs and a CUDA build of torch (PyTorch's CUDA wheels or your cluster's)",
        )
    )
    asked = onnx_providers_asked(cfg)
    if any(CUDA in providers for providers in asked.values()):
        import onnxruntime

        available = onnxruntime.get_available_providers()
        both = _installed("onnxruntime") and _installed("onnxruntime-gpu")
        keys = ", ".join(key for key, providers in asked.items() if CUDA in providers)
        ok = CUDA in available and not both
        detail = f"asked by {keys}; this onnxruntime {onnxruntime.__version__} offers {available}"
        if both:
            detail += "; both onnxruntime and onnxruntime-gpu are installed (the CPU one shadows the GPU one)"
        hint = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'fairforge[gpu]' (onnxruntime-gpu)"
        items.append(Item("devices", "onnxruntime", CUDA, ok, detail, hint))
    return items


# ----------------------------------------------------------------------------------------- all


def check(cfg: Any, config_dir: Path) -> Report:
    """Everything the run of `cfg` needs, relative paths read from `config_dir`."""
    config = cfg.model_dump(mode="json", by_alias=True)
    defaults = type(cfg)().model_dump(mode="json", by_alias=True)
    report = Report(config_dir)
    report.items += check_files(config, defaults, config_dir)
    stages = set(cfg.stages)
    if "generate" in stages:
        report.items += check_insightface_pack(cfg, config_dir) + check_diffusion(cfg, config_dir)
    if "balance" in stages:
        report.items += check_classifiers(cfg, config_dir)
    if "train" in stages:
        report.items += check_timm(cfg)
    report.items += check_devices(cfg)
    return report


def check_required(ctx: Any) -> None:
    """Raise one `MissingModelError` listing every problem of the run's config (`pipeline run`)."""
    report = check(ctx.cfg, ctx.config_path.parent)
    for item in report.items:
        if item.ok:
            log.info("preflight: %s", item.line().strip())
    problems = report.problems
    if problems:
        listing = "\n".join(item.line() for item in problems)
        raise MissingModelError(
            f"preset {ctx.preset!r} needs {len(problems)} thing(s) that are not there "
            f"(relative paths from {ctx.config_path.parent}):\n{listing}\n"
            "See README 'What a real run needs'; `fairforge pipeline check` prints the whole list. "
            "The tiny preset needs none of them."
        )
