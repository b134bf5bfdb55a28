"""The closed loop: verify -> top up the deficits -> verify again, until full or `max_rounds`.

Round r's acceptance table and deficits are written to `DIR/rounds/round-RR/` BEFORE its top-up
starts, and `DIR/rounds/state.json` records which top-up is in flight, so a killed loop resumes
by finishing that same top-up (generate resumes its own plan) instead of asking for new images.
`topup` is any callable that makes exactly the deficits file's images in the generated folder;
`generate_topup` is the real one: `fairforge generate ... --top-up FILE`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fairforge.atomic import atomic_open, atomic_write_json
from fairforge.errors import FairforgeError
from fairforge.manifest import read_manifest
from fairforge.taxonomy import Taxonomy

from .verify import RoundResult

log = logging.getLogger(__name__)

TopUp = Callable[[Path], None]
ROUNDS = "rounds"


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """A plain (non-manifest) Parquet table, written atomically."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    with atomic_open(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def generate_topup(gen_dir: Path, config: str | None, preset: str | None, overrides: Sequence[str]) -> TopUp:
    """A top-up that runs `fairforge generate --top-up FILE` in this process."""

    def run(deficits: Path) -> None:
        from fairforge.cli import main

        argv = ["generate", "--out", str(gen_dir), "--top-up", str(deficits)]
        if config:
            argv += ["--config", config]
        if preset:
            argv += ["--preset", preset]
        for item in overrides:
            argv += ["--set", item]
        code = main(argv)
        if code != 0:
            raise FairforgeError(f"`fairforge {' '.join(argv)}` exited with {code}")

    return run


def run_loop(
    gen_dir: Path,
    out_dir: Path,
    verify: Callable[[pd.DataFrame, Path], RoundResult],
    taxonomy: Taxonomy,
    topup: TopUp | None,
    max_rounds: int,
    signature: str,
) -> tuple[RoundResult, pd.DataFrame]:
    """Verify, then top up and re-verify while cells are short; returns the last round and the rounds table."""
    rounds_dir = out_dir / ROUNDS
    state_file = rounds_dir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    if state.get("signature") != signature:
        state = {"signature": signature, "history": []}
    history: list[dict] = state["history"]
    pending = state.get("pending")
    if pending is not None and topup is not None:  # a top-up was in flight when we were killed
        log.info("resuming the top-up of round %d", pending)
        topup(rounds_dir / f"round-{pending:02d}" / "deficits.parquet")
        history[pending]["topped_up"] = True
        atomic_write_json(state_file, {"signature": signature, "history": history})
    # go on after the last topped-up round, or redo the last round's verification (it is cached)
    round_no = len(history) if history and history[-1]["topped_up"] else max(len(history) - 1, 0)
    history = history[:round_no]
    while True:
        frame = read_manifest(gen_dir, taxonomy)
        result = verify(frame, Path(frame.attrs["root"]))
        folder = rounds_dir / f"round-{round_no:02d}"
        write_table(result.acceptance, folder / "acceptance.parquet")
        write_table(result.deficits, folder / "deficits.parquet")
        acc = result.acceptance
        history.append(
            {
                "round": round_no,
                "made": int(acc["made"].sum()),
                "passed": int(acc["passed"].sum()),
                "kept": int(acc["kept"].sum()),
                "target": int(acc["target"].sum()),
                "missing": int(result.deficits["missing"].sum()) if len(result.deficits) else 0,
                "topped_up": False,
            }
        )
        full = result.deficits.empty
        if full or topup is None or round_no >= max_rounds:
            atomic_write_json(state_file, {"signature": signature, "history": history})
            reason = (
                "every cell is full"
                if full
                else ("no top-up asked" if topup is None else f"max_rounds={max_rounds} reached")
            )
            log.info("closed loop stops after round %d: %s", round_no, reason)
            return result, pd.DataFrame(history)
        atomic_write_json(state_file, {"signature": signature, "history": history, "pending": round_no})
        log.info("round %d: %d images missing; topping up", round_no, history[-1]["missing"])
        topup(folder / "deficits.parquet")
        history[-1]["topped_up"] = True
        atomic_write_json(state_file, {"signature": signature, "history": history})
        round_no += 1
