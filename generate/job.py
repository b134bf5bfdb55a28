"""`fairforge generate`: plan, make pristine faces, make fakes, merge — resumable and sharded.

Read top to bottom, the order is the point:
1. check every input (cells, deficits, prompt words, pool manifest, model files and sha256s,
   onnxruntime providers) before anything is written;
2. write the plan (main process), then every rank reads the same plan;
3. pristine phase: each rank takes its slice of the planned diffusion batches
   (`PartialState().split_between_processes`, after `--shard i/N` for SLURM arrays), skips batches
   whose images and rows all exist, writes images atomically and appends rows to its own shard;
4. barrier, then the fakes phase the same way (fakes read their pristine faces from disk);
5. barrier, then the main process sweeps temporaries of killed writers, merges the shards in plan
   order and writes `summary.json`. With `--shard i/N` (N > 1) no task merges: a final run without
   `--shard` finds everything done and merges.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fairforge.atomic import atomic_write_text
from fairforge.config.base import dump_yaml
from fairforge.config.generate import GenerateConfig
from fairforge.errors import ConfigError, FairforgeError
from fairforge.manifest import ShardWriter, merge_shards, read_manifest
from fairforge.taxonomy import Taxonomy

from . import methods
from .align import Aligner
from .faces import build_detector
from .fakes import FaceSource, FakeError, fake_provenance
from .output import (
    FAILED_DIR,
    clear_failed,
    done_ids,
    encode,
    failed_records,
    full_path,
    image_relpath,
    lossless_path,
    mark_failed,
    read_rows,
    sweep_temporaries,
    write_image,
    write_summary,
)
from .plan import (
    Plan,
    PlanContext,
    Pool,
    build_plan,
    config_cells,
    derived_methods,
    finish_request,
    manifest_pool,
    read_deficits,
)
from .pristine import Failed, Made, Renderer, gen_params, run_batch
from .rows import manifest_row, render_key, render_params

PHASES = ("all", "pristine", "fakes")


@dataclass
class JobOptions:
    """The command line's choices for one invocation (the config says how images are made)."""

    count_per_cell: int | None = None
    cells: Sequence[str] | None = None
    top_up: Path | None = None
    shard: tuple[int, int] = (0, 1)
    phase: str = "all"
    retry_failed: bool = False
    progress: bool = True
    #: split -> fraction of the people (`balance.split`) and whether a real pool keeps its splits
    splits: dict[str, float] | None = None
    keep_existing: bool = True


def parse_shard(text: str | None) -> tuple[int, int]:
    """`i/N` -> (i, N), 0 <= i < N."""
    if not text:
        return (0, 1)
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/N, e.g. 3/16") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < N")
    return index, count


def shard_slice(items: Sequence[Any], index: int, count: int) -> list[Any]:
    """Contiguous slice `index` of `count`, the first slices one longer (as accelerate splits)."""
    per, extra = divmod(len(items), count)
    start = index * per + min(index, extra)
    return list(items[start : start + per + (1 if index < extra else 0)])


def _generators(cfg: GenerateConfig, names: Iterable[str]) -> dict[str, str]:
    """Generator id of every method named and of the partner rows its fakes plan."""
    out: dict[str, str] = {}
    for name in names:
        generator = methods.get(name)()
        out[name] = generator.generator_id(cfg)
        if generator.partner is not None:
            out[generator.partner] = methods.get(generator.partner)().generator_id(cfg)
    return out


class Job:
    """One invocation over one output folder; every rank builds the same Job.

    `check` (every input, nothing written), `make_plan` (pure: the same plan on every rank),
    `load` (the models of the generators the plan uses, then the plan written once) and `run`
    (the phases and the merge); `run` does whichever of the first three has not been done.
    """

    def __init__(self, cfg: GenerateConfig, out: Path, seed: int, taxonomy: Taxonomy, options: JobOptions) -> None:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        if options.phase not in PHASES:
            raise ConfigError(f"--phase {options.phase!r}: expected one of {list(PHASES)}")
        self.cfg, self.out, self.seed, self.taxonomy, self.options = cfg, Path(out), seed, taxonomy, options
        # ACCELERATE_USE_CPU: `accelerate launch` on CPUs (Accelerator reads it; PartialState alone does not)
        self.state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
        self.plan: Plan | None = None
        self.generators: dict[str, methods.Generator] = {}
        self._checked = False
        self._pipe = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairforge-write")
        self._writes: list[Future] = []

    @property
    def rows(self) -> pd.DataFrame:
        """This invocation's plan rows (after `make_plan`)."""
        if self.plan is None:
            raise RuntimeError("Job.rows before Job.make_plan()")
        return self.plan.rows

    # ---- 1. inputs, plan, models ---------------------------------------------------------------
    def check(self) -> None:
        """Every input (cells, deficits, prompt words, pool manifest, detector files), before any write."""
        cfg, options = self.cfg, self.options
        self._cells = config_cells(cfg, self.taxonomy, options.cells)
        self._deficits = read_deficits(options.top_up, self.taxonomy) if options.top_up else None
        self._count = cfg.count_per_cell if options.count_per_cell is None else options.count_per_cell
        if self._count < 0:
            raise ConfigError(f"--count-per-cell {self._count}: expected >= 0")
        self.pool: Pool | None = None
        self.pool_frame: pd.DataFrame | None = None
        if cfg.pool.source == "manifest":
            self.pool, self.pool_frame = manifest_pool(str(cfg.pool.manifest), self.taxonomy)
        self._methods = set(cfg.methods) | (set(self._deficits[0]["method"]) if self._deficits else set())
        self.render = render_params(cfg)
        self.aligner = Aligner.from_config(cfg.align)
        self.renderer = Renderer(cfg, build_detector(cfg.detector, self.aligner), self.aligner)
        self._checked = True

    def make_plan(self) -> Plan:
        """The plan after this invocation, in memory (pure given the folder: every rank agrees)."""
        if not self._checked:
            self.check()
        ctx = PlanContext(self.seed, self.taxonomy, _generators(self.cfg, self._methods), render_key(self.cfg))
        if self.options.splits is not None:
            ctx.splits, ctx.keep_existing = dict(self.options.splits), self.options.keep_existing
        self.plan = build_plan(self.cfg, self.out, ctx, self._cells, self._count, self._deficits, self.pool)
        return self.plan

    def load(self) -> None:
        """Load the generators the plan uses (model files checked), then write the plan once."""
        if self.plan is None:
            self.make_plan()
        assert self.plan is not None
        for name in dict.fromkeys(self.rows["method"]):
            generator = methods.get(name, key="plan.method")()
            generator.load(self.cfg)
            self.generators[name] = generator
        if self.state.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            self.plan.save(self.out)
            atomic_write_text(self.out / "generate.yaml", dump_yaml(self.cfg))
        self.state.wait_for_everyone()
        index, count = self.options.shard
        shard_name = "" if count == 1 else f"shard{index}of{count}-"
        self.writer = ShardWriter(
            self.out, name=f"{shard_name}rank{self.state.process_index}", flush_every=self.cfg.flush_every
        )

    # ---- helpers ---------------------------------------------------------------------------
    def _mine(self, items: Sequence[Any]) -> list[Any]:
        """This rank's share of ALL the phase's items (done or not), so the split never depends on
        what another rank has finished: each item has one owner, also across restarts."""
        index, count = self.options.shard
        local = shard_slice(items, index, count)
        with self.state.split_between_processes(local) as part:
            return list(part)

    def _pending(self, ids: Iterable[str], done: set[str], failed: set[str]) -> list[str]:
        skip = done if self.options.retry_failed else done | failed
        return [i for i in ids if i not in skip]

    def _progress(self, total: int, desc: str):  # type: ignore[no-untyped-def]
        from tqdm.auto import tqdm

        return tqdm(
            total=total, desc=desc, unit="img", disable=not (self.options.progress and self.state.is_main_process)
        )

    def _record(self, plan_row: dict[str, Any], image, full=None, **fields: Any) -> None:  # type: ignore[no-untyped-def]
        """Hand one finished image to the writer thread (encode, write atomically, then its row).

        Encoding and fsync-ed writes overlap the next pipeline call instead of stalling it; one
        thread keeps the order image-then-row, so a row never points at a file not yet on disk.
        `full` is the full-resolution image a pristine crop was cut from, kept for swaps.
        """
        self._writes.append(self._io.submit(self._write, dict(plan_row), image, full, fields))
        while len(self._writes) > 32:  # bound the images held in memory
            self._writes.pop(0).result()

    def _write(self, plan_row: dict[str, Any], image, full, fields: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
        path = image_relpath(plan_row["method"], plan_row["id"], self.cfg.align)
        if full is not None:
            data = encode(full, self.cfg.align, lossless=True)
            write_image(self.out, str(full_path(self.out, plan_row["id"]).relative_to(self.out)), data)
        data = encode(image, self.cfg.align)
        if self.cfg.align.image_format != "png" and plan_row["method"] == "diffusion":
            lossless = encode(image, self.cfg.align, lossless=True)
            write_image(self.out, str(lossless_path(self.out, plan_row["id"]).relative_to(self.out)), lossless)
        write_image(self.out, path, data)
        self.writer.add(manifest_row(plan_row, path, data, image, **fields))
        clear_failed(self.out, plan_row["id"])

    def _flush(self) -> None:
        """Wait for the writer thread (re-raising its errors), then write the last rows."""
        while self._writes:
            self._writes.pop(0).result()
        self.writer.flush()

    # ---- 3. pristine faces -------------------------------------------------------------------
    def pipeline(self):  # type: ignore[no-untyped-def]
        """The diffusion pipeline on this rank's device, loaded on first use (a rank with no batch never loads it)."""
        if self._pipe is None:
            from .diffusion import load_pipeline

            self._pipe = load_pipeline(self.cfg.diffusion, str(self.state.device))
        return self._pipe

    def pristine(self) -> None:
        assert self.plan is not None
        rows = self.rows[self.rows["method"].isin(methods.of_kind("pristine"))]
        done, failed = done_ids(self.out), set(failed_records(self.out))
        pending = set(self._pending(rows["id"], done, failed))
        members = self.plan.frame[self.plan.frame["gen_batch"].isin(set(rows["gen_batch"]))]
        groups = {b: g.to_dict("records") for b, g in members.groupby("gen_batch", sort=False)}
        mine = [b for b in self._mine(list(groups)) if pending & {r["id"] for r in groups[b]}]
        if not mine:
            return
        from .diffusion import torch_dtype

        pipe = self.pipeline()
        dtype = str(torch_dtype(self.cfg.diffusion.dtype, str(self.state.device))).replace("torch.", "")
        with self._progress(sum(len(pending & {r["id"] for r in groups[b]}) for b in mine), "diffusion") as bar:
            for batch in mine:
                for result in run_batch(pipe, self.cfg, self.renderer, groups[batch], self.seed):
                    row = result.row
                    if row["id"] not in pending:
                        continue
                    if isinstance(result, Failed):
                        mark_failed(self.out, row, result.reason, result.attempts)
                    else:
                        self._write_pristine(result, dtype)
                    bar.update(1)
        self._flush()

    def _write_pristine(self, made: Made, dtype: str) -> None:
        params = gen_params(self.cfg, made, self.render, dtype)
        params["crop_matrix"] = self.renderer.matrix(made.face).tolist()
        self._record(
            dict(made.row),
            made.crop,
            full=made.full if any(methods.get(m).pairs_faces for m in self.cfg.methods) else None,
            seed=made.seed,
            identity=made.row["id"],
            retries=made.round,
            gen_params=params,
            landmarks=made.landmarks,
            face_score=made.face.score,
        )

    # ---- 4. fakes ------------------------------------------------------------------------------
    def fakes(self) -> None:
        rows = self.rows[self.rows["method"].isin(derived_methods())]
        recorded = read_rows(self.out)
        done, failed = done_ids(self.out, recorded), failed_records(self.out)
        pending_ids = self._pending(rows["id"], done, set(failed))
        if not pending_ids:
            return
        real = self.pool is not None and self.pool.source == "manifest"
        source = FaceSource(self.out, self.pool_frame if real else recorded, self.renderer, real)  # type: ignore[arg-type]
        by_id = rows.set_index("id", drop=False)
        pending = set(pending_ids)
        mine = [i for i in self._mine(rows["id"].tolist()) if i in pending]
        if not real:
            self._check_dependencies(by_id.loc[mine], source, failed)
        with self._progress(len(mine), "fakes") as bar:
            for id_ in mine:
                row = by_id.loc[id_].to_dict()
                try:
                    image, dst, params = self.generators[row["method"]].make(self.cfg, row, source)
                except FakeError as exc:
                    mark_failed(self.out, row, exc.reason, 1)
                    bar.update(1)
                    continue
                self._record(
                    row,
                    image,
                    seed=int(row["seed"]),
                    identity=dst.identity,
                    retries=0,
                    gen_params={**params, "render": self.render},
                    provenance=fake_provenance(dst),
                    landmarks=dst.landmarks,
                )
                bar.update(1)
        self._flush()

    def _check_dependencies(self, rows: pd.DataFrame, source: FaceSource, failed: dict[str, Any]) -> None:
        """Every face a fake needs is made or failed; otherwise another shard has not made it yet."""
        for record in rows.to_dict("records"):
            # the faces the generator reads (a self-blend's dst_id may be a partner made in this phase)
            for face in self.generators[record["method"]].reads(record):
                if not source.has(face) and face not in failed:
                    raise FairforgeError(
                        f"{self.out}: fake {record['id']} needs face {face}, which is not made yet "
                        "(with --shard, run --phase pristine on every shard before --phase fakes)"
                    )

    # ---- 5. merge and summary ----------------------------------------------------------------
    def finish(self) -> dict[str, Any] | None:
        assert self.plan is not None
        if self.options.shard[1] > 1 or not self.state.is_main_process:
            return None
        sweep_temporaries(self.out)
        merge_shards(self.out, order=self.plan.frame["id"].tolist(), taxonomy=self.taxonomy)
        summary = summarize(self.rows, read_manifest(self.out, self.taxonomy, validate=False), failed_records(self.out))
        summary["request"] = self.plan.request
        write_summary(self.out, summary)
        if self.plan.request != "base" and summary["total"]["pending"] == 0:
            finish_request(self.out, self.plan.request)
        return summary

    def run(self) -> dict[str, Any] | None:
        from .diffusion import torch_threads

        if not self.generators:
            self.load()
        try:
            with torch_threads(self.cfg.num_threads):
                if self.options.phase in ("all", "pristine"):
                    self.pristine()
                    self.state.wait_for_everyone()
                if self.options.phase in ("all", "fakes"):
                    self.fakes()
                    self.state.wait_for_everyone()
        finally:
            self._io.shutdown(wait=True)
        return self.finish()


def summarize(rows: pd.DataFrame, manifest: pd.DataFrame, failed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """made / retried / failed / pending per cell and method, over this invocation's plan rows."""
    made = manifest.set_index("id")
    table: dict[tuple[str, str, str, str], Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    for record in rows.itertuples(index=False):
        key = (record.gender, record.race, record.age, record.method)
        counts = table[key]
        if record.id in made.index:
            counts["made"] += 1
            retries = made.at[record.id, "retries"] if "retries" in made.columns else 0
            counts["retried"] += int(retries) if pd.notna(retries) else 0
        elif record.id in failed:
            counts["failed"] += 1
            counts["retried"] += max(int(failed[record.id]["attempts"]) - 1, 0)
            reasons[failed[record.id]["reason"]] += 1
        else:
            counts["pending"] += 1
    names = ("made", "retried", "failed", "pending")
    cells = [
        {"gender": g, "race": r, "age": a, "method": m, **{n: int(c[n]) for n in names}}
        for (g, r, a, m), c in sorted(table.items())
    ]
    total = {n: sum(c[n] for c in table.values()) for n in names}
    return {"total": total, "failure_reasons": dict(reasons), "cells": cells, "failed_dir": FAILED_DIR}


def run_generate(
    cfg: GenerateConfig,
    out: str | Path,
    *,
    seed: int = 0,
    taxonomy: Taxonomy | None = None,
    options: JobOptions | None = None,
) -> dict[str, Any] | None:
    """Run the generate job on this process (and its peers under `accelerate launch`)."""
    return Job(cfg, Path(out), seed, taxonomy or Taxonomy(), options or JobOptions()).run()
