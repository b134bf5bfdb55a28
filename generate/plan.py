"""The plan: one row per image to make, written before any image.

Why a plan: a batch job over thousands of GPUs-hours must be resumable, shardable and auditable.
Every image is a plan row (cell, k-th sample of the cell, method, seed, prompt, the faces it is made
from); its id and seed are pure functions of the row, so any rank can make any row, a rerun skips
what exists, and a regenerated image keeps its id.

- seeds: `derive_seed(global seed, cell, k, method, attempt)`, a stable hash (blake2b), never
  Python's `hash`; a retried image takes the next `attempt`.
- ids: method, cell, k and a hash of everything that shapes the bytes (generator, prompt, steps,
  size, alignment, the source faces...), so changing the config makes new ids, never stale skips.
- batches: diffusion rows are grouped into pipeline calls HERE, not at run time. CPU and GPU kernels
  are not batch-invariant (a batch of 4 and 4 batches of 1 differ by ~1e-6, enough to flip a few
  uint8 pixels), so the plan fixes each image's batch: the bytes are the same at any world size and
  on resume, and the provenance names the batch to rerun for a bit-exact copy.
- splits: the people are split before any fake is planned. Every pristine face gets its split
  from `fairforge.splits.split_sequence` (per cell, so each cell follows the fractions); a real
  pool keeps its manifest's official splits (or is split by person). Each fake takes a split the
  same way (per cell and method) and draws its target AND its source face from that split, so no
  fake links two splits and balance never has to drop one. A top-up row takes its deficit's split.
- the plan file grows: rows already planned keep their batch and seed; a top-up appends rows with
  fresh k after the largest k used. A top-up is identified by the sha256 of its deficits file
  (`requests.json`): rerunning an unfinished top-up reuses its rows, a finished one's twin makes new
  rows (the balance loop may hand the same deficits twice).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fairforge.atomic import atomic_open, atomic_write_json
from fairforge.config.generate import PAIRING_RULES, GenerateConfig
from fairforge.errors import ConfigError, ManifestError
from fairforge.manifest import read_manifest
from fairforge.splits import SPLITS, normalize_split, person_splits, split_sequence
from fairforge.taxonomy import UNKNOWN, Taxonomy

from . import methods
from .prompts import Cell, cell_key, check_prompts, sample_prompt

PLAN_NAME = "plan.parquet"
REQUESTS_NAME = "requests.json"
#: The real partner of a self-blend whose target was transformed (made in the fakes phase).
SBI_TARGET = "sbi_target"


def derived_methods() -> list[str]:
    """Generators whose rows the fakes phase makes from pristine faces on disk (fakes and partners)."""
    return methods.of_kind("fake", "partner")


PLAN_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("request", pa.string()),
        ("gen_batch", pa.string()),
        ("method", pa.string()),
        ("gender", pa.string()),
        ("race", pa.string()),
        ("age", pa.string()),
        ("k", pa.int64()),
        ("seed", pa.int64()),
        ("label", pa.int8()),
        ("generator", pa.string()),
        ("prompt", pa.string()),
        ("negative_prompt", pa.string()),
        ("steps", pa.int32()),
        ("guidance", pa.float32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("dst_id", pa.string()),
        ("src_id", pa.string()),
        ("pair_rule", pa.string()),
        ("src_cell", pa.string()),
        ("spec", pa.string()),
        ("split", pa.string()),
        ("identity", pa.string()),
        ("src_identity", pa.string()),
    ]
)
PLAN_COLUMNS = PLAN_SCHEMA.names


# ------------------------------------------------------------------------------------------------
# seeds, ids, cells
# ------------------------------------------------------------------------------------------------
def _digest(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=size).digest()


def derive_seed(global_seed: int, cell: Cell, k: int, method: str, attempt: int = 0) -> int:
    """A 63-bit seed from (global seed, cell, k, method, attempt): stable across machines and Pythons."""
    text = "|".join([str(global_seed), *cell, str(k), method, str(attempt)])
    return int.from_bytes(_digest(text, 8), "little") & (2**63 - 1)


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else {"+": "plus"}.get(ch, "_") for ch in text)


def make_id(method: str, cell: Cell, k: int, provenance: Mapping[str, Any]) -> str:
    digest = _digest(json.dumps(provenance, sort_keys=True, default=str), 5).hex()
    return f"{method}-{'-'.join(slug(c) for c in cell)}-{k:05d}-{digest}"


def parse_cells(
    keys: Iterable[str], taxonomy: Taxonomy, base: Sequence[Cell], with_age: bool = True, key: str = "--cells"
) -> list[Cell]:
    """`gender-race-age` cells, or `gender-race` groups (= their cells in `base`), in taxonomy order."""
    chosen: set[Cell] = set()
    for item in keys:
        parts = item.strip().split("-", 2)
        if len(parts) < 2:
            raise ConfigError(f"{key}: {item!r} is not a cell; expected gender-race or gender-race-age")
        gender, race = parts[0], parts[1]
        if gender not in taxonomy.genders or race not in taxonomy.races:
            raise ConfigError(
                f"{key}: {item!r}: gender must be one of {list(taxonomy.genders)} and race one of {list(taxonomy.races)}"
            )
        if len(parts) == 3:
            allowed = taxonomy.ages if with_age else (UNKNOWN,)
            if parts[2] not in allowed:
                raise ConfigError(f"{key}: {item!r}: age must be one of {list(allowed)}")
            chosen.add((gender, race, parts[2]))
        else:
            chosen.update(c for c in base if c[:2] == (gender, race))
    return [c for c in taxonomy.cells(with_age) if c in chosen]


def config_cells(cfg: GenerateConfig, taxonomy: Taxonomy, override: Sequence[str] | None = None) -> list[Cell]:
    """The cells to generate: the taxonomy's, limited by `generate.ages`, then `generate.cells` or `--cells`."""
    cells = taxonomy.cells(cfg.with_age)
    if cfg.ages is not None:
        unknown = [a for a in cfg.ages if a not in taxonomy.ages]
        if unknown:
            raise ConfigError(f"generate.ages: {unknown} not in the taxonomy's ages {list(taxonomy.ages)}")
        if cfg.with_age:
            cells = [c for c in cells if c[2] in cfg.ages]
    if override is not None:
        return parse_cells(override, taxonomy, cells, cfg.with_age, "--cells")
    if cfg.cells is not None:
        return parse_cells(cfg.cells, taxonomy, cells, cfg.with_age, "generate.cells")
    return cells


# ------------------------------------------------------------------------------------------------
# deficits
# ------------------------------------------------------------------------------------------------
DEFICIT_COLUMNS = ("gender", "race", "age", "method", "missing")
#: Optional deficits column: the split the missing images must be made in.
DEFICIT_SPLIT = "split"


def read_deficits(path: str | Path, taxonomy: Taxonomy) -> tuple[pd.DataFrame, str]:
    """The balance stage's deficits, validated (file, row, column in every error), and their sha256."""
    file = Path(path)
    if not file.is_file():
        raise ManifestError(str(file), "deficits file not found")
    data = file.read_bytes()
    try:
        frame = pq.read_table(file).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(str(file), f"not a readable Parquet file ({exc})") from None
    for column in DEFICIT_COLUMNS:
        if column not in frame.columns:
            raise ManifestError(
                str(file), f"required column is missing (expected {list(DEFICIT_COLUMNS)})", column=column
            )
    vocab = {"gender": taxonomy.genders, "race": taxonomy.races, "age": (*taxonomy.ages, UNKNOWN)}
    for row, record in enumerate(frame.itertuples(index=False)):
        for column, allowed in vocab.items():
            value = getattr(record, column)
            if value not in allowed:
                raise ManifestError(str(file), f"{value!r} is not one of {list(allowed)}", row=row, column=column)
        if record.method not in methods.of_kind("pristine", "fake"):
            raise ManifestError(
                str(file),
                f"unknown method {record.method!r}; expected one of {methods.of_kind('pristine', 'fake')}",
                row=row,
                column="method",
            )
        missing = record.missing
        if isinstance(missing, bool) or not float(missing).is_integer() or int(missing) <= 0:
            raise ManifestError(
                str(file), f"missing must be an integer > 0, got {missing!r}", row=row, column="missing"
            )
        if DEFICIT_SPLIT in frame.columns and normalize_split(getattr(record, DEFICIT_SPLIT)) not in (*SPLITS, None):
            value = getattr(record, DEFICIT_SPLIT)
            raise ManifestError(str(file), f"split must be one of {list(SPLITS)}, got {value!r}", row=row, column="split")
    frame = frame.assign(missing=frame["missing"].astype("int64"))
    columns = list(DEFICIT_COLUMNS)
    if DEFICIT_SPLIT in frame.columns:
        frame = frame.assign(split=[normalize_split(v) for v in frame[DEFICIT_SPLIT]])
        columns.append(DEFICIT_SPLIT)
    return frame[columns], hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------
# the pool of pristine faces that fakes are made from
# ------------------------------------------------------------------------------------------------
@dataclass
class Pool:
    """Pristine faces per cell, in a fixed order: the dst (and src) of every swap and blend.

    `splits` gives each face its split and `persons` its person (a generated face is its own
    person; a real frame the person its manifest names), so a fake can draw both faces from one
    split and record who is in it.
    """

    faces: dict[Cell, list[str]] = field(default_factory=dict)
    source: str = "diffusion"
    splits: dict[str, str] = field(default_factory=dict)
    persons: dict[str, str] = field(default_factory=dict)
    #: a real pool's whole manifest: its fakes link persons when the pool is split by person
    rows: pd.DataFrame | None = field(default=None, repr=False)
    _by_split: dict[tuple[Cell, str | None], list[str]] | None = field(default=None, init=False, repr=False)

    def size(self, cell: Cell, split: str | None = None) -> int:
        return len(self.members(cell, split))

    def members(self, cell: Cell, split: str | None = None) -> list[str]:
        ids = self.faces.get(cell, [])
        if split is None:
            return ids
        if self._by_split is None:  # built once: pools are not changed after they are made
            self._by_split = {}
            for c, faces in self.faces.items():
                for face in faces:
                    self._by_split.setdefault((c, self.splits.get(face)), []).append(face)
        return self._by_split.get((cell, split), [])

    def face(self, cell: Cell, index: int, split: str | None = None) -> str:
        ids = self.members(cell, split)
        return ids[index % len(ids)]

    def person(self, face: str) -> str:
        return self.persons.get(face, face)


def manifest_pool(path: str, taxonomy: Taxonomy) -> tuple[Pool, pd.DataFrame]:
    """Real faces (label 0) of an imported manifest, per cell, with their persons and official splits.

    Rows without a split are given one by `pool_splits` when the plan is built.
    """
    frame = read_manifest(path, taxonomy)
    real = frame[frame["label"] == 0]
    faces: dict[Cell, list[str]] = {}
    for cell, group in real.groupby(["gender", "race", "age"], sort=True, dropna=False):
        faces[tuple(str(v) for v in cell)] = sorted(group["id"].tolist())  # type: ignore[index]
    persons = {
        str(i): str(p) for i, p in zip(real["id"], real["identity"]) if isinstance(p, str) and p
    }
    splits = {str(i): str(s) for i, s in zip(real["id"], real["split"]) if isinstance(s, str)}
    return Pool(faces, "manifest", splits, persons, frame), frame


def pool_splits(pool: Pool, frame: pd.DataFrame, fractions: Mapping[str, float], keep_existing: bool, seed: int) -> Pool:
    """A real pool's splits: its official ones (`keep_existing`), the rest split by person.

    The person split runs over the whole pool manifest (its fakes link the persons they were made
    from), stratified by cell, so the pool's people are split the way balance would split them.
    """
    kept = dict(pool.splits) if keep_existing else {}
    ids = {i for members in pool.faces.values() for i in members}
    if ids <= set(kept):
        return Pool(pool.faces, pool.source, kept, pool.persons, frame)
    strata = frame["source"].astype(str) + "|" + frame["gender"].astype(str) + "|" + frame["race"].astype(str)
    assigned = person_splits(frame, strata + "|" + frame["label"].astype(str), fractions, seed)
    for face, split in zip(frame["id"], assigned):
        if face in ids and face not in kept:
            kept[str(face)] = str(split)
    return Pool(pool.faces, pool.source, kept, pool.persons, frame)


def diffusion_pool(plan: pd.DataFrame) -> Pool:
    rows = plan[plan["method"] == "diffusion"].sort_values(["gender", "race", "age", "k"], kind="stable")
    faces: dict[Cell, list[str]] = {}
    splits: dict[str, str] = {}
    has_split = "split" in rows.columns
    for record in rows.itertuples(index=False):
        faces.setdefault((record.gender, record.race, record.age), []).append(record.id)
        if has_split and isinstance(record.split, str):
            splits[record.id] = record.split
    return Pool(faces, "diffusion", splits)


def _pair_candidates(rule: str, cell: Cell, pool: Pool, split: str | None = None) -> list[Cell]:
    gender, race, age = cell
    cells = [c for c in pool.faces if pool.size(c, split) > 0]
    if rule == "same_cell":
        return [cell] if pool.size(cell, split) >= 2 else []
    if rule == "same_gender_other_race":
        return [c for c in cells if c[0] == gender and c[1] != race and c[2] == age]
    if rule == "same_race_other_gender":
        return [c for c in cells if c[0] != gender and c[1] == race and c[2] == age]
    return [c for c in cells if c != cell]  # any_cell


def pair_source(
    cell: Cell, k: int, dst_index: int, pool: Pool, pairing: Mapping[str, int], split: str | None = None
) -> tuple[str, Cell, str]:
    """(rule, source cell, source id) of the k-th swap of `cell`, balanced by construction.

    Swaps are dealt to rules in proportion to their weights (round-robin over the weighted rule
    list), and within a rule to the candidate cells round-robin; rules with no candidate for this
    cell (e.g. no other race of that gender and age in the pool) drop out for this cell. With
    `split`, only faces of that split are candidates (`dst_index` is then the target's index
    among its cell's faces of that split).
    """
    rules = [r for r in PAIRING_RULES for _ in range(pairing.get(r, 0)) if _pair_candidates(r, cell, pool, split)]
    if not rules:
        where = "" if split is None else f" in split {split}"
        raise ConfigError(
            f"generate.inswapper.pairing: no rule of {dict(pairing)} has a source face for cell {cell_key(cell)}"
            f"{where} (the pool needs another face of this cell or of a matching cell)"
        )
    rule = rules[k % len(rules)]
    candidates = sorted(_pair_candidates(rule, cell, pool, split))
    turn = k // len(rules)
    src_cell = candidates[turn % len(candidates)]
    rotation = turn // len(candidates)
    if rule == "same_cell":
        # an earlier face of the cell (face 1 for face 0), so growing the pool never changes a planned pair
        index = 1 if dst_index == 0 else (dst_index - 1 - rotation) % dst_index
        return rule, src_cell, pool.face(cell, index, split)
    return rule, src_cell, pool.face(src_cell, rotation, split)


# ------------------------------------------------------------------------------------------------
# building the plan
# ------------------------------------------------------------------------------------------------
@dataclass
class PlanContext:
    """What the rows depend on beyond the config: the global seed, fixed facts about models."""

    seed: int
    taxonomy: Taxonomy
    generators: dict[str, str]  # method -> generator id (model id, file hash)
    render: str  # hash of the alignment/crop/encoding/detector settings every image shares
    #: split -> fraction of the people (balance.split); faces and fakes are split by these
    splits: Mapping[str, float] = field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    #: a real pool keeps its manifest's splits (balance.split.keep_existing)
    keep_existing: bool = True


def _spec(cfg: GenerateConfig, method: str) -> dict[str, Any]:
    """The config that shapes this method's bytes (goes into the id hash and the row's `spec`)."""
    return methods.get(method)().spec(cfg)


def face_split(ctx: PlanContext, cell: Cell, k: int, start: int | None = None) -> str:
    """The split of the k-th pristine face of `cell` (a pure function of the cell, k and fractions).

    `start`: where the cell's faces begin in one sequence shared by the plan's cells (the base plan
    lays its cells end to end, so the whole set follows the fractions exactly even when each cell
    holds only a few faces); without it the cell's own sequence, offset by a hash of the cell.
    """
    if start is None:
        return split_sequence(cell_key(cell), 1, ctx.splits, start=k)[0]
    return split_sequence("plan", 1, ctx.splits, start=start + k)[0]


def _diffusion_row(
    cfg: GenerateConfig,
    ctx: PlanContext,
    cell: Cell,
    k: int,
    request: str,
    split: str | None = None,
    start: int | None = None,
) -> dict[str, Any]:
    d = cfg.diffusion
    seed = derive_seed(ctx.seed, cell, k, "diffusion")
    prompt = sample_prompt(cfg.prompt, cell, derive_seed(ctx.seed, cell, k, "prompt"))
    row = {
        "request": request,
        "method": "diffusion",
        "gender": cell[0],
        "race": cell[1],
        "age": cell[2],
        "k": k,
        "seed": seed,
        "label": 1 if cfg.diffusion_label == "fake" else 0,
        "generator": ctx.generators["diffusion"],
        "prompt": prompt,
        "negative_prompt": cfg.prompt.negative,
        "steps": d.steps,
        "guidance": d.guidance,
        "width": d.width,
        "height": d.height,
        "spec": json.dumps(_spec(cfg, "diffusion"), sort_keys=True),
        "split": split or face_split(ctx, cell, k, start),
    }
    key = {
        k_: row[k_]
        for k_ in ("generator", "prompt", "negative_prompt", "steps", "guidance", "width", "height", "seed", "label")
    }
    row["id"] = make_id("diffusion", cell, k, {**key, "spec": row["spec"], "render": ctx.render})
    row["identity"] = row["id"]  # a generated face is its own person
    return row


def _has_source(cfg: GenerateConfig, cell: Cell, pool: Pool, split: str) -> bool:
    return any(_pair_candidates(r, cell, pool, split) for r, w in cfg.inswapper.pairing.items() if w > 0)


def _fake_target(
    cfg: GenerateConfig, method: str, cell: Cell, k: int, pool: Pool, split: str | None
) -> tuple[str, str, int]:
    """(target face, its split, its index among the cell's faces of that split) of the k-th fake.

    The k-th fake of a cell is made on the cell's k-th face and in its split (so fakes follow the
    faces' fractions, and growing the pool moves no planned fake); a top-up asking for a split
    takes that split's faces in turn. A swap needs a source face in the same split: a target
    whose split has none gives way to the next face that has one.
    """
    if pool.size(cell) == 0 or (split is not None and pool.size(cell, split) == 0):
        hint = (
            "add method diffusion for this cell"
            if pool.source == "diffusion"
            else "the pool manifest has no real face of it"
        )
        where = "" if split is None else f" in split {split}"
        raise ConfigError(f"generate.pool: no pristine face of cell {cell_key(cell)}{where} for {method} ({hint})")
    members = pool.members(cell, split)
    for step in range(len(members)):
        dst = members[(k + step) % len(members)]
        dst_split = pool.splits.get(dst) if split is None else split
        if dst_split is None:
            raise ConfigError(f"generate.pool: face {dst} has no split (the pool manifest's split column is empty)")
        if not methods.get(method).pairs_faces or _has_source(cfg, cell, pool, dst_split):
            return dst, dst_split, pool.members(cell, dst_split).index(dst)
    raise ConfigError(
        f"generate.inswapper.pairing: no split of cell {cell_key(cell)} has a source face for a swap "
        f"(rules {dict(cfg.inswapper.pairing)}; a swap takes both faces from one split: the pool needs two faces "
        "of one split that a rule pairs)"
    )


def _fake_row(
    cfg: GenerateConfig,
    ctx: PlanContext,
    method: str,
    cell: Cell,
    k: int,
    request: str,
    pool: Pool,
    split: str | None = None,
) -> dict[str, Any]:
    """The k-th fake of `cell`; `split`: the split a top-up asks for (None: its target face's)."""
    dst, split, index = _fake_target(cfg, method, cell, k, pool, split)
    row = {
        "request": request,
        "method": method,
        "gender": cell[0],
        "race": cell[1],
        "age": cell[2],
        "k": k,
        "seed": derive_seed(ctx.seed, cell, k, method),
        "label": 1,
        "generator": ctx.generators[method],
        "dst_id": dst,
        "spec": json.dumps(_spec(cfg, method), sort_keys=True),
        "split": split,
    }
    if methods.get(method).pairs_faces:
        rule, src_cell, src = pair_source(cell, k, index, pool, cfg.inswapper.pairing, split)
        row.update(src_id=src, pair_rule=rule, src_cell=cell_key(src_cell))
    else:
        row["src_id"] = dst  # a self-blend: the source face is the target face
    row["identity"] = pool.person(dst)
    row["src_identity"] = pool.person(row["src_id"])
    key = {k_: row.get(k_) for k_ in ("generator", "seed", "dst_id", "src_id", "pair_rule")}
    row["id"] = make_id(method, cell, k, {**key, "spec": row["spec"], "render": ctx.render})
    return row


def _fake_rows(
    cfg: GenerateConfig,
    ctx: PlanContext,
    method: str,
    cell: Cell,
    k: int,
    request: str,
    pool: Pool,
    split: str | None = None,
) -> list[dict[str, Any]]:
    """The k-th fake of `cell`, preceded by the real row it is paired with when that row is new.

    A self-blend whose colour/quality transform falls on the target is paired with that
    transformed target, planned here as a real row (`SBI_TARGET`, label 0) from the same seed, and
    the fake's `dst_id` names it: outside the blend mask the two are equal.
    """
    row = _fake_row(cfg, ctx, method, cell, k, request, pool, split)
    generator = methods.get(method)()
    if generator.partner is None or not generator.partner_needed(int(row["seed"])):
        return [row]
    partner = methods.get(generator.partner)()
    target = {
        **row,
        "method": partner.name,
        "label": partner.label(cfg),
        "generator": ctx.generators.get(partner.name, partner.generator_id(cfg)),
        "dst_id": None,
    }
    key = {k_: target.get(k_) for k_ in ("generator", "seed", "src_id")}
    target["id"] = make_id(partner.name, cell, k, {**key, "spec": target["spec"], "render": ctx.render})
    row["dst_id"] = target["id"]
    key = {k_: row.get(k_) for k_ in ("generator", "seed", "dst_id", "src_id", "pair_rule")}
    row["id"] = make_id(method, cell, k, {**key, "spec": row["spec"], "render": ctx.render})
    return [target, row]


def load_plan(out: Path) -> pd.DataFrame:
    file = out / PLAN_NAME
    if not file.is_file():
        return pd.DataFrame({name: pd.Series(dtype=object) for name in PLAN_COLUMNS})
    frame = pq.read_table(file).to_pandas()
    for name in PLAN_COLUMNS:  # a plan written before a column existed
        if name not in frame.columns:
            frame[name] = None
    return frame


def write_plan(plan: pd.DataFrame, out: Path) -> Path:
    table = pa.Table.from_pandas(plan[PLAN_COLUMNS], schema=PLAN_SCHEMA, preserve_index=False)
    with atomic_open(out / PLAN_NAME, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    return out / PLAN_NAME


def load_requests(out: Path) -> dict[str, dict[str, Any]]:
    file = out / REQUESTS_NAME
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


def finish_request(out: Path, tag: str) -> None:
    requests = load_requests(out)
    if tag in requests and not requests[tag].get("finished"):
        requests[tag]["finished"] = True
        atomic_write_json(out / REQUESTS_NAME, requests)


@dataclass
class Plan:
    """The whole plan of the folder, the ids this invocation makes, and what to write before work."""

    frame: pd.DataFrame
    ids: list[str]
    request: str
    requests: dict[str, dict[str, Any]]
    changed: bool

    @property
    def rows(self) -> pd.DataFrame:
        wanted = set(self.ids)
        return self.frame[self.frame["id"].isin(wanted)]

    def save(self, out: Path) -> None:
        if self.changed or not (out / PLAN_NAME).is_file():
            write_plan(self.frame, out)
            atomic_write_json(out / REQUESTS_NAME, self.requests)


def _batches(frame: pd.DataFrame, batch_size: int, request: str) -> pd.Series:
    """gen_batch of new diffusion rows: consecutive groups of `batch_size` in plan order."""
    labels = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    diffusion = frame.index[frame["method"] == "diffusion"]
    for j, start in enumerate(range(0, len(diffusion), batch_size)):
        labels.loc[diffusion[start : start + batch_size]] = f"{request}:{j:06d}"
    return labels


def _with_face_splits(plan: pd.DataFrame, ctx: PlanContext) -> pd.DataFrame:
    """A plan written before faces had splits: its pristine faces get theirs (the same pure function)."""
    todo = (plan["method"] == "diffusion") & plan["split"].isna()
    if not todo.any():
        return plan
    plan = plan.copy()
    plan.loc[todo, "split"] = [
        face_split(ctx, (r.gender, r.race, r.age), int(r.k)) for r in plan.loc[todo].itertuples(index=False)
    ]
    plan.loc[todo, "identity"] = plan.loc[todo, "id"]
    return plan


def build_plan(
    cfg: GenerateConfig,
    out: Path,
    ctx: PlanContext,
    cells: list[Cell],
    count_per_cell: int,
    deficits: tuple[pd.DataFrame, str] | None = None,
    pool: Pool | None = None,
) -> Plan:
    """The plan after this invocation: existing rows kept as they are, new ones appended.

    Pure given the folder's plan: every rank (and every restarted run) computes the same `Plan`.
    """
    existing = _with_face_splits(load_plan(out), ctx)
    requests = load_requests(out)
    known = set(existing["id"])

    if deficits is not None:
        frame, digest = deficits
        open_tags = [t for t, r in requests.items() if r.get("deficits_sha256") == digest and not r.get("finished")]
        if open_tags:  # a restart of an unfinished top-up: same rows
            tag = open_tags[0]
            return Plan(existing, existing.loc[existing["request"] == tag, "id"].tolist(), tag, requests, False)
        rounds = sum(1 for r in requests.values() if r.get("deficits_sha256") == digest)
        tag = f"topup-{digest[:12]}-{rounds}"
        wanted: list[tuple[Cell, str, int]] = []
        split_of: dict[tuple[Cell, str, int], str] = {}
        starts: dict[Cell, int] = {}
        used = existing.groupby(["gender", "race", "age", "method"])["k"].max().to_dict() if len(existing) else {}
        for record in frame.itertuples(index=False):
            cell = (record.gender, record.race, record.age)
            start = int(used.get((*cell, record.method), -1)) + 1
            wanted.extend((cell, record.method, start + i) for i in range(int(record.missing)))
            split = getattr(record, "split", None)
            if isinstance(split, str):  # the top-up keeps the split its deficit is in
                split_of.update({(cell, record.method, start + i): split for i in range(int(record.missing))})
            used[(*cell, record.method)] = start + int(record.missing) - 1
        requests = {**requests, tag: {"kind": "top-up", "deficits_sha256": digest, "finished": False}}
    else:
        tag = "base"
        split_of = {}
        starts = {cell: i * count_per_cell for i, cell in enumerate(cells)}
        wanted = [(cell, m, k) for m in _method_order(cfg.methods) for cell in cells for k in range(count_per_cell)]
    order = {c: i for i, c in enumerate(ctx.taxonomy.cells(True) + ctx.taxonomy.cells(False))}
    wanted.sort(key=lambda item: (methods.plan_order(item[1]), order[item[0]], item[2]))
    check_prompts(cfg.prompt, ctx.taxonomy, sorted({cell for cell, _, _ in wanted}))

    new_rows: list[dict[str, Any]] = []
    ids: list[str] = []
    diffusion_new = [w for w in wanted if methods.get(w[1]).kind == "pristine"]
    for cell, _method, k in diffusion_new:
        row = _diffusion_row(cfg, ctx, cell, k, tag, split_of.get((cell, "diffusion", k)), starts.get(cell))
        ids.append(row["id"])
        if row["id"] not in known:
            known.add(row["id"])
            new_rows.append(row)
    planned = (
        pd.concat([existing, pd.DataFrame(new_rows, columns=PLAN_COLUMNS)], ignore_index=True) if new_rows else existing
    )
    if pool is None or pool.source == "diffusion":
        pool = diffusion_pool(planned)
    elif pool.rows is not None:
        pool = pool_splits(pool, pool.rows, ctx.splits, ctx.keep_existing, ctx.seed)
    for cell, method, k in (w for w in wanted if methods.get(w[1]).kind != "pristine"):
        for row in _fake_rows(cfg, ctx, method, cell, k, tag, pool, split_of.get((cell, method, k))):
            ids.append(row["id"])
            if row["id"] not in known:
                known.add(row["id"])
                new_rows.append(row)
    if not new_rows:
        return Plan(existing, ids, tag, requests, deficits is not None)
    added = pd.DataFrame(new_rows, columns=PLAN_COLUMNS)
    request_key = _digest("|".join(added["id"]), 5).hex()
    added["gen_batch"] = _batches(added, cfg.diffusion.batch_size, f"{tag}-{request_key}")
    if deficits is not None:
        requests[tag]["rows"] = len(ids)
    frame = pd.concat([existing, added], ignore_index=True) if len(existing) else added
    return Plan(frame.reset_index(drop=True), ids, tag, requests, True)


def _method_order(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda m: (methods.plan_order(m), m))
