"""`DIR/report.md` + `DIR/report.html`: per-cell filter counts, the acceptance heatmap, contact
sheets, closed-loop rounds, splits.

One `Document` (headings, text, tables, images) renders to both formats, so the two never
disagree. Figures go under `DIR/report/`; nothing in the report depends on the time it was made,
so a rerun on the same input writes the same files.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from fairforge.atomic import atomic_open, atomic_write_text
from fairforge.taxonomy import Taxonomy, group_name

from .audit import audit_table, geometry_table
from .split import split_table

FIGURES = "report"


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def image(self, path: str, alt: str) -> None:
        self.blocks.append(("img", (path, alt)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [value, ""]
            elif kind == "table":
                out += [_md_table(value), ""]
            else:
                out += [f"![{value[1]}]({value[0]})", ""]
        return "\n".join(out)

    def html(self) -> str:
        style = (
            "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}"
            "img{max-width:100%;margin:.5em 0}"
        )
        out = [
            "<!doctype html>",
            f'<html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title><style>{style}</style></head><body>',
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for kind, value in self.blocks:
            if kind == "h2":
                out.append(f"<h2>{html.escape(value)}</h2>")
            elif kind == "p":
                out.append(f"<p>{html.escape(value)}</p>")
            elif kind == "table":
                out.append(value.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.3f}"))
            else:
                out.append(f'<figure><img src="{html.escape(value[0])}" alt="{html.escape(value[1])}"></figure>')
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{value:.3f}"
    return "" if value is None else str(value)


def _md_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def acceptance_heatmap(table: pd.DataFrame, taxonomy: Taxonomy, path: Path) -> None:
    """One panel per method: rows gender-race groups, columns age bins, colour passed / made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted(table["method"].unique())
    ages = [a for a in taxonomy.ages if a in set(table["age"])] or sorted(set(table["age"]))
    groups = list(taxonomy.groups)
    panels = max(len(methods), 1)
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(2.2 + (0.5 * len(ages) + 0.4) * panels, 1.6 + 0.4 * len(groups)),
        squeeze=False,
        sharey=True,
        constrained_layout=True,
    )
    for ax, method in zip(axes[0], methods):
        part = table[table["method"] == method]
        rate = np.full((len(groups), len(ages)), np.nan)
        text = np.full((len(groups), len(ages)), "", dtype=object)
        for row in part.itertuples(index=False):
            key = group_name(row.gender, row.race)
            if key in groups and row.age in ages and row.made > 0:
                i, j = groups.index(key), ages.index(row.age)
                rate[i, j] = row.passed / row.made
                text[i, j] = f"{row.passed}/{row.made}"
        image = ax.imshow(rate, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), label in np.ndenumerate(text):
            if label:
                ax.text(
                    j, i, label, ha="center", va="center", fontsize=7, color="white" if rate[i, j] < 0.6 else "black"
                )
        ax.set_xticks(range(len(ages)), ages, rotation=45, fontsize=8)
        ax.set_title(method, fontsize=10)
    axes[0][0].set_yticks(range(len(groups)), groups, fontsize=8)
    fig.suptitle("acceptance per cell: passed every filter / made", fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="acceptance")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def contact_sheet(paths: list[Path], title: str, thumb: int, path: Path, columns: int = 8) -> None:
    """A grid of thumbnails with the cell's name on top."""
    columns = max(1, min(columns, len(paths)))
    rows = max(1, math.ceil(len(paths) / columns))
    sheet = Image.new("RGB", (columns * thumb, rows * thumb + 18), "white")
    ImageDraw.Draw(sheet).text((4, 3), title, fill="black")
    for k, file in enumerate(paths):
        with Image.open(file) as image:
            tile = image.convert("RGB").resize((thumb, thumb))
        sheet.paste(tile, ((k % columns) * thumb, 18 + (k // columns) * thumb))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        sheet.save(handle, format="PNG")


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------
def write_report(
    out_dir: Path,
    *,
    taxonomy: Taxonomy,
    acceptance: pd.DataFrame,
    rounds: pd.DataFrame,
    deficits: pd.DataFrame,
    rejected: pd.DataFrame,
    manifest: pd.DataFrame,
    synthetic_ids: set[str],
    contact_per_cell: int,
    contact_thumb: int,
    with_age: bool,
    audit: Mapping[str, Any] | None = None,
) -> None:
    doc = Document("fairforge balance report")
    synth = manifest[manifest["id"].isin(synthetic_ids)]
    doc.heading("Summary")
    doc.text(
        f"{int(acceptance['made'].sum())} generated images checked; {int(acceptance['passed'].sum())} passed every "
        f"filter; {int(acceptance['kept'].sum())} kept after capping each cell at its target "
        f"({int(acceptance['target'].sum())} in all); {int(acceptance['missing'].sum())} still missing. "
        f"The final manifest holds {len(manifest)} rows ({len(synth)} synthetic, {len(manifest) - len(synth)} real), "
        "split by person: no person, and no fake made from them, is in two splits (checked independently)."
    )
    doc.heading("Rows per split, per source, label and method")
    doc.table(split_table(manifest))
    doc.heading("Counts before and after each filter, per cell and method")
    after = [c for c in acceptance.columns if c.startswith("after_")]
    doc.table(
        acceptance[["gender", "race", "age", "method", "made", *after, "kept", "target", "missing", "acceptance"]]
    )
    doc.heading("Rejections by reason")
    counts = (
        rejected["reason"].value_counts().rename_axis("reason").reset_index(name="rows")
        if len(rejected)
        else pd.DataFrame(columns=["reason", "rows"])
    )
    doc.table(counts)
    figures = out_dir / FIGURES
    acceptance_heatmap(acceptance, taxonomy, figures / "acceptance.png")
    doc.heading("Acceptance per cell (the generator's bias)")
    doc.image(f"{FIGURES}/acceptance.png", "acceptance heatmap")
    doc.heading("Closed-loop rounds")
    doc.table(rounds)
    doc.heading("Deficits after the last round")
    doc.text("Every cell is full." if deficits.empty else "These cells are short of their target.")
    if not deficits.empty:
        doc.table(deficits)
    doc.heading("Splits")
    split_counts = manifest.groupby(["split", "label"]).size().unstack("label", fill_value=0).reset_index()
    split_counts.columns = [str(c) if c == "split" else f"label {c}" for c in split_counts.columns]
    doc.table(split_counts)
    if audit is not None:
        doc.heading("Label-shortcut audit (what a detector could learn outside the face)")
        doc.text(
            "Probes: a cross-validated classifier on features of what lies outside the face and of the file, "
            "fakes against their paired real rows (per method) and synthetic against each imported source; "
            f"AUC 0.5 means no shortcut, above {audit['thresholds']['max_auc']} is flagged. Pairs: the fraction "
            "of pixels outside the face that differ between a fake and its partner. Details in audit.json."
        )
        doc.table(audit_table(audit))
        doc.text("Exceeded: " + "; ".join(audit["exceeded"]) if audit["exceeded"] else "No threshold exceeded.")
        doc.heading("Landmark geometry per source")
        doc.table(geometry_table(audit))
    doc.heading("Contact sheets (kept images, per cell)")
    keys = ["gender", "race", "age"] if with_age else ["gender", "race"]
    sheets = set()
    for cell, rows in synth.groupby(keys, sort=True):
        name = "-".join(str(c) for c in cell)
        file = f"{FIGURES}/contact/{name}.png"
        paths = [out_dir / p for p in rows["path"].head(contact_per_cell)]
        contact_sheet(paths, name, contact_thumb, out_dir / file)
        sheets.add(out_dir / file)
        doc.image(file, f"contact sheet {name}")
    contact_dir = figures / "contact"
    if contact_dir.is_dir():
        for stale in contact_dir.glob("*.png"):
            if stale not in sheets:
                stale.unlink()
    atomic_write_text(out_dir / "report.md", doc.markdown())
    atomic_write_text(out_dir / "report.html", doc.html())
