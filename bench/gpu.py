"""The GPU benchmark of a real run, on one GPU, with random weights of real size (nothing downloaded).

    python bench/gpu.py                   # one H100/H200: a few minutes; prints one table, writes bench-gpu.json
    python bench/gpu.py --smoke           # the same code at tiny sizes on a CPU (CI runs it)

1. Diffusion: fairforge's diffusion stage call (`generate_batch`: one generator per image, the
   black/NaN check, uint8 rounding) vs the bare diffusers call, on an SDXL pipeline built from
   bench/configs/sdxl.json (UNet 2.6B, VAE, both text encoders; random weights) at 1024 px fp16,
   then with the stage's options on: channels-last, and `torch.compile` of the UNet (its warm-up
   reported apart). The options change the modules in place, so each is measured after the one
   before it; bare and plain fairforge are interleaved.
2. Training step: fairforge's step (method registry -> update rule -> multi-task detector, as
   train/run.py runs it) vs a bare PyTorch + timm loop on efficientnet_b4 at 380 px in bf16, batch
   32 and 64, for ERM (Adam), SAM (rho 0.05 over Adam) and SAM with the ascent every 5 updates
   (reused in between): images/s, MFU from the FLOPs torch's FLOP counter measures on the step
   itself (forward, backward, SAM's second pass) against the GPU's dense bf16 peak, and peak memory.
3. The DataLoader's images/s from a manifest of 256 px JPEG crops resized to 380, against the ERM step.
4. `fairness_report` on 10M predictions.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
SDXL_CONFIG = HERE / "configs" / "sdxl.json"


def _sibling(name: str) -> ModuleType:
    """bench/<name>.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_train = _sibling("train")
bench_evaluate = _sibling("evaluate")


#: --smoke: the same code, sizes a 2-core CPU runs in well under a minute.
SMOKE = {
    "size": 64,
    "steps": 2,
    "batch": 2,
    "rounds": 1,
    "backbone": "test_efficientnet",  # timm's tiny EfficientNet: the same blocks, ~0.1M parameters
    "resolution": 32,
    "batch_sizes": [2],
    "train_steps": 1,
    "train_rounds": 1,
    "loader_images": 32,
    "stored_size": 64,
    "workers": 0,
    "predictions": 100_000,
    "precision": "no",
    "compile": False,
}


def sdxl_configs(smoke: bool) -> dict[str, dict[str, Any]]:
    """The shipped SDXL configs; `smoke` shrinks the widths and depths, keeping the architecture."""
    cfg = {k: v for k, v in json.loads(SDXL_CONFIG.read_text()).items() if not k.startswith("_")}
    if smoke:
        text = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2}
        cfg["text_encoder"].update(text, projection_dim=32)
        cfg["text_encoder_2"].update(text, projection_dim=32)
        cfg["unet"].update(
            block_out_channels=[32, 64, 64],
            attention_head_dim=[2, 4, 4],
            transformer_layers_per_block=[1, 1, 1],
            layers_per_block=1,
            cross_attention_dim=64,  # the two text encoders' hidden sizes, concatenated
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 time ids + the pooled text embedding
            sample_size=8,
        )
        cfg["vae"].update(block_out_channels=[32, 32, 32, 32], layers_per_block=1, sample_size=64)
    return cfg


def sdxl_pipeline(device: torch.device, dtype: torch.dtype, smoke: bool):  # type: ignore[no-untyped-def]
    """A StableDiffusionXLPipeline of random weights, built on `device` (no host copy of 2.6B params)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from fairforge.tiny.clip_tokenizer import write_clip_tokenizer

    cfg = sdxl_configs(smoke)
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**cfg["unet"])
        vae = AutoencoderKL(**cfg["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_encoder_2"]))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(Path(tmp)))
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**cfg["scheduler"]),
        add_watermarker=False,
    )
    if dtype != torch.float32:
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, Any]) -> Iterator[None]:
    """Peak GPU memory allocated inside the block, in GiB (None on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    yield
    out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def timed_rounds(calls: dict[str, Callable[[], None]], rounds: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each contender, in rotating rounds after one warm-up call each."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            _sync(device)
            start = time.perf_counter()
            calls[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# ------------------------------------------------------------------------------------ diffusion


def bench_diffusion(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    from fairforge.config import validate
    from fairforge.config.generate import DiffusionConfig
    from fairforge.generate.diffusion import apply_speedups, bad_image, generate_batch, to_uint8

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = sdxl_pipeline(device, dtype, args.smoke)
    params = sum(p.numel() for p in pipe.unet.parameters())
    cfg = validate(
        DiffusionConfig,
        {"steps": args.steps, "guidance": 5.0, "width": args.size, "height": args.size, "batch_size": args.batch},
    )
    prompts = [f"a portrait photo of person {i}, studio lighting" for i in range(args.batch)]
    negatives = ["cartoon, blurry"] * args.batch
    seeds = list(range(args.batch))

    def bare() -> None:
        with torch.inference_mode():
            pipe(
                prompt=prompts,
                negative_prompt=negatives,
                num_inference_steps=cfg.steps,
                guidance_scale=cfg.guidance,
                height=cfg.height,
                width=cfg.width,
                generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
                output_type="np",
            )

    def stage() -> None:
        images = generate_batch(pipe, cfg, prompts, negatives, seeds)
        for image in images:
            bad_image(image, cfg.black_threshold)
            to_uint8(np_nan_to_num(image))

    rows: list[dict[str, Any]] = []
    setting = f"SDXL UNet {params / 1e6:,.0f}M params, {args.size}px, {args.steps} steps, batch {args.batch}, {dtype}"

    def row(name: str, seconds: float, memory: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "part": "diffusion",
            "contender": name,
            "setting": setting,
            "images_per_s": args.batch / seconds,
            "s_per_batch": seconds,
            **memory,
            **extra,
        }

    memory: dict[str, Any] = {}
    with peak_memory(device, memory):
        seconds = timed_rounds({"bare diffusers": bare, "fairforge": stage}, args.rounds, device)
    base = seconds["bare diffusers"]
    rows += [row(name, s, memory, vs_bare=base / s) for name, s in seconds.items()]

    apply_speedups(pipe, cfg.model_copy(update={"channels_last": True}))
    memory = {}
    with peak_memory(device, memory):
        s = timed_rounds({"fairforge channels_last": stage}, args.rounds, device)["fairforge channels_last"]
    rows.append(row("fairforge channels_last", s, memory, vs_bare=base / s))

    if args.compile:
        apply_speedups(pipe, cfg.model_copy(update={"compile": True}))
        memory = {}
        with peak_memory(device, memory):
            start = time.perf_counter()
            stage()  # compiles for this batch shape
            _sync(device)
            warmup = time.perf_counter() - start
            s = timed_rounds({"compiled": stage}, args.rounds, device)["compiled"]
        rows.append(row("fairforge channels_last + compile", s, memory, vs_bare=base / s, compile_s=warmup))
    return rows


def np_nan_to_num(image):  # type: ignore[no-untyped-def]
    """Random weights may overflow in fp16; the stage retries such images, the benchmark just rounds them."""
    import numpy as np

    return np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1)


# ------------------------------------------------------------------------------------- training


def bare_sam_step(
    args: argparse.Namespace, device: torch.device, every: int = 1, rho: float = 0.05
) -> Callable[[dict], None]:
    """SAM in the plainest PyTorch + timm loop: ascend to w + rho g/|g|, take that gradient, step from w.

    With `every` > 1 the ascent is computed every `every` steps and the same perturbation reused
    in between (one forward/backward there), as fairforge's efficient SAM does by default.
    """
    import timm

    torch.manual_seed(0)
    model = timm.create_model(args.backbone, num_classes=1).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    state: dict[str, Any] = {"step": 0, "e": None}

    def loss_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = (batch["image"].float() - mean) / std
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits.float(), batch["label"].float())

    def step(batch: dict[str, torch.Tensor]) -> None:
        if state["step"] % every == 0:
            loss_of(batch).backward()
            grads = [p.grad for p in params]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            state["e"] = [g * (rho / (norm + 1e-12)) for g in grads]
            optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_add_(params, state["e"])
        loss_of(batch).backward()
        with torch.no_grad():
            torch._foreach_sub_(params, state["e"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1

    return step


def step_flops(step: Callable[[dict], None], batches: list[dict], n: int) -> float:
    """FLOPs of one step, averaged over `n` steps, as torch's FLOP counter sees them (fwd + bwd + SAM)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        for i in range(n):
            step(batches[i % len(batches)])
    return counter.get_total_flops() / n


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in bench_train.PEAK_FLOPS.items() if k in name), None)


def bench_train_step(args: argparse.Namespace, device: torch.device, accelerator: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    peak = peak_flops(device)
    for batch_size in args.batch_sizes:
        targs = argparse.Namespace(**{**vars(args), "batch_size": batch_size})
        batches = bench_train._batches(targs, args.train_steps, device)
        every5 = {"optimizer": {"every": 5}}
        steps = {
            "bare ERM": bench_train.bare_step(targs, device),
            "fairforge ERM": bench_train.fairforge_step(targs, "erm", accelerator),
            "bare SAM": bare_sam_step(targs, device),
            "fairforge SAM": bench_train.fairforge_step(targs, "ddfg", accelerator),
            "bare SAM every 5": bare_sam_step(targs, device, every=5),
            "fairforge SAM every 5": bench_train.fairforge_step(targs, "ddfg", accelerator, every5),
        }
        measured: dict[str, dict[str, Any]] = {}
        for name, step in steps.items():
            memory: dict[str, Any] = {}
            with peak_memory(device, memory):
                flops = step_flops(step, batches, 5)  # 5 steps: one full period of SAM every 5
            measured[name] = {"flops_per_step": flops, **memory}
        seconds = bench_train.interleaved(steps, batches, args.train_rounds, device)
        setting = f"{args.backbone} {args.resolution}px, batch {batch_size}, {args.precision}"
        for name, s in seconds.items():
            bare = seconds[name.replace("fairforge", "bare")]
            flops = measured[name]["flops_per_step"]
            rows.append(
                {
                    "part": "train",
                    "contender": name,
                    "setting": setting,
                    "images_per_s": batch_size / s,
                    "s_per_step": s,
                    "vs_bare": bare / s,
                    "tflops_per_s": flops / s / 1e12,
                    "mfu": flops / s / peak if peak else None,
                    **measured[name],
                }
            )
    return rows


def bench_loader(args: argparse.Namespace, train_rows: list[dict[str, Any]]) -> dict[str, Any]:
    batch_size = args.batch_sizes[0]
    largs = argparse.Namespace(**{**vars(args), "batch_size": batch_size})
    with tempfile.TemporaryDirectory() as tmp:
        rate = bench_train.loader_images_per_second(largs, Path(tmp))
    erm = next(r for r in train_rows if r["contender"] == "fairforge ERM" and f"batch {batch_size}," in r["setting"])
    return {
        "part": "loader",
        "contender": "DataLoader",
        "setting": f"{args.workers} workers, {args.stored_size}px JPEG -> {args.resolution}px, batch {batch_size}",
        "images_per_s": rate,
        "vs_erm_step": rate / erm["images_per_s"],
    }


def bench_evaluate_report(args: argparse.Namespace) -> dict[str, Any]:
    from fairforge.evaluate import fairness_report

    data = bench_evaluate.make_predictions(args.predictions)
    fairness_report(**{k: v[:1000] for k, v in data.items()})  # imports and first calls
    start = time.perf_counter()
    fairness_report(data["labels"], data["scores"], data["genders"], data["races"])
    seconds = time.perf_counter() - start
    return {
        "part": "evaluate",
        "contender": "fairness_report",
        "setting": f"{args.predictions:,} predictions, 8 + 2 + 4 groups",
        "seconds": seconds,
        "predictions_per_s": args.predictions / seconds,
    }


# ---------------------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| part | contender | setting | images/s | vs bare | MFU | TFLOP/s | peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rate = _fmt(r.get("images_per_s"), ".1f") or f"{r['seconds']:.2f} s"
        ratio = _fmt(r.get("vs_bare"), ".3f") or (f"{r['vs_erm_step']:.2f}x ERM step" if "vs_erm_step" in r else "")
        lines.append(
            f"| {r['part']} | {r['contender']} | {r['setting']} | {rate} | {ratio} | {_fmt(r.get('mfu'), '.1%')} "
            f"| {_fmt(r.get('tflops_per_s'), '.1f')} | {_fmt(r.get('peak_gib'), '.1f')} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CI)")
    parser.add_argument("--out", default="bench-gpu.json", help="the JSON written")
    parser.add_argument("--size", type=int, default=1024, help="diffusion image side")
    parser.add_argument("--steps", type=int, default=10, help="diffusion steps per image (the full preset: 30)")
    parser.add_argument("--batch", type=int, default=4, help="diffusion images per call")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per diffusion contender")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="time torch.compile")
    parser.add_argument("--backbone", default="efficientnet_b4")
    parser.add_argument("--resolution", type=int, default=380)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--precision", choices=["no", "bf16", "fp16"], default="bf16")
    parser.add_argument("--train-steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers")
    parser.add_argument("--loader-images", type=int, default=2048)
    parser.add_argument("--stored-size", type=int, default=256, help="side of the JPEG crops on disk")
    parser.add_argument("--predictions", type=int, default=10_000_000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["diffusion", "train", "loader", "evaluate"])
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from accelerate import Accelerator

    from fairforge.train.devices import no_accelerator

    accelerator = Accelerator(cpu=no_accelerator(), mixed_precision=args.precision)
    device = accelerator.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name()
    else:
        name = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; smoke: {args.smoke}", flush=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if "diffusion" not in args.skip:
        rows += bench_diffusion(args, device)
        print(f"diffusion done ({time.perf_counter() - started:.0f} s)", flush=True)
    train_rows: list[dict[str, Any]] = []
    if "train" not in args.skip:
        train_rows = bench_train_step(args, device, accelerator)
        rows += train_rows
        print(f"training done ({time.perf_counter() - started:.0f} s)", flush=True)
    if "loader" not in args.skip and train_rows:
        rows.append(bench_loader(args, train_rows))
    if "evaluate" not in args.skip:
        rows.append(bench_evaluate_report(args))
    result = {
        "device": name,
        "torch": torch.__version__,
        "smoke": args.smoke,
        "seconds": time.perf_counter() - started,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "rows": rows,
    }
    print()
    print(table(rows))
    print(f"\ntotal {result['seconds']:.0f} s; JSON: {args.out}")
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
