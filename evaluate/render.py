"""report.md and report.html from the report dict: one content model, two renderers.

`sections(report, plots)` lays out what a reader sees (titles, sentences, tables, images); the two
renderers only format it, so the Markdown and the HTML never disagree. The HTML is one
self-contained file: the PNGs are embedded as data URIs and the page needs no network (the SVG
copies of the plots sit beside it in plots/ for papers).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Any

from .cross import TABLE_METRICS
from .groups import ATTRIBUTES
from .metrics import FAIRNESS_METRICS, GROUP_METRICS


def source_stem(source: str) -> str:
    """A source's name as a plot file name part: letters, digits, `-`, `_` only (never a path)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", source) or "_"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    level: int = 2
    warnings: list[str] = field(default_factory=list)  # shown as a highlighted box


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if percent else f"{value:.4f}"


def _with_ci(value: float | None, interval: list[float] | None, percent: bool = False) -> str:
    text = _fmt(value, percent)
    if interval is not None:
        text += f" [{_fmt(interval[0], percent)}, {_fmt(interval[1], percent)}]"
    return text


def _header(metric: str) -> str:
    return metric if metric.startswith("F_") else metric.upper()


def _overall_table(report: dict[str, Any], ci: dict[str, Any]) -> Table:
    intervals = ci.get("overall", {})
    return Table(
        [_header(m) for m in GROUP_METRICS],
        [[_with_ci(report["overall"][m], intervals.get(m)) for m in GROUP_METRICS]],
    )


def _fairness_table(report: dict[str, Any], ci: dict[str, Any]) -> Table:
    """Every fairness metric of every grouping, estimate [low, high] when bootstrapped."""
    intervals = ci.get("fairness", {})
    rows = [
        [name, FAIRNESS_METRICS[name].definition]
        + [_with_ci(report["fairness"][a][name], intervals.get(a, {}).get(name), percent=True) for a in ATTRIBUTES]
        for name in FAIRNESS_METRICS
    ]
    return Table(["metric", "definition", *ATTRIBUTES], rows)


def _groups_table(report: dict[str, Any], ci: dict[str, Any], attribute: str) -> Table:
    intervals = ci.get("groups", {}).get(attribute, {})
    rows = []
    for name, g in report["groups"][attribute].items():
        rows.append(
            [name, str(g["n"]), str(g["n_real"]), str(g["n_fake"])]
            + [_with_ci(g[m], intervals.get(name, {}).get(m)) for m in GROUP_METRICS]
        )
    return Table(["group", "n", "real", "fake", *(_header(m) for m in GROUP_METRICS)], rows)


def _left_out_section(report: dict[str, Any]) -> Section:
    section = Section("Groups left out of the fairness gaps")
    one_class = {a: names for a, names in report.get("one_class", {}).items() if names}
    if one_class:
        listed = "; ".join(f"{a}: {', '.join(names)}" for a, names in one_class.items())
        section.text.append(f"Groups with one class only (no AUC, no EER): {listed}.")
    if not report["left_out"]:
        section.text.append("None: every metric is defined for every group.")
        return section
    section.text.append(
        "A group without real or without fake rows has null metrics and is left out of every fairness gap of"
        " its grouping (the field's reference rule); the gaps compare the remaining groups and need at least two."
    )
    section.tables.append(
        Table(
            ["attribute", "group", "why", "null metrics", "left out of"],
            [
                [e["attribute"], e["group"], e["reason"], ", ".join(e["null"]), ", ".join(e["left_out_of"]) or "-"]
                for e in report["left_out"]
            ],
        )
    )
    return section


def _cross_section(by_source: dict[str, Any], ci: dict[str, Any]) -> Section:
    section = Section(f"Intra vs cross dataset (intra: {by_source['intra']})")
    section.text.append(
        "Detection metrics are overall; F_* are over the intersectional groups, in percent. The fairness"
        " generalization gap is cross minus intra; its interval pairs independent resamples of the two sources."
        " EER and AP have no interval (they are not bootstrapped)."
    )
    table_ci = ci.get("table", {})
    header = ["source", "role", "n", *(_header(m) for m in TABLE_METRICS)]
    rows = [
        [
            s,
            row["role"],
            str(row["n"]),
            *(_with_ci(row[m], table_ci.get(s, {}).get(m), m.startswith("F_")) for m in TABLE_METRICS),
        ]
        for s, row in by_source["table"].items()
    ]
    section.tables.append(Table(header, rows))
    gap = by_source.get("gap") or {}
    if gap:
        gap_ci = ci.get("gap", {})
        gap_rows = [
            [
                f"{s} - {by_source['intra']}",
                *(
                    _with_ci(v[m], gap_ci.get("per_source", {}).get(s, {}).get(m), m.startswith("F_"))
                    for m in TABLE_METRICS
                ),
            ]
            for s, v in gap["per_source"].items()
        ]
        gap_rows.append(
            [
                f"mean cross - {by_source['intra']}",
                *(_with_ci(gap["mean"][m], gap_ci.get("mean", {}).get(m), m.startswith("F_")) for m in TABLE_METRICS),
            ]
        )
        section.tables.append(Table(["gap", *(_header(m) for m in TABLE_METRICS)], gap_rows))
    for source, sub in by_source.get("sources", {}).items():
        if sub["left_out"]:
            listed = ", ".join(f"{e['attribute']} {e['group']} ({e['reason']})" for e in sub["left_out"])
            section.text.append(f"{source}: groups left out of some metrics: {listed}.")
    return section


def _source_sections(by_source: dict[str, Any], plots: dict[str, bytes]) -> list[Section]:
    """Each source on its own: its fairness table and its intersectional groups (the pooled table mixes them)."""
    out = []
    for source, sub in by_source.get("sources", {}).items():
        role = by_source["table"][source]["role"]
        section = Section(f"Source {source} ({role}): {sub['n']} predictions", level=3)
        sub_ci = sub.get("ci") or {}
        section.warnings += [w["message"] for w in sub.get("warnings", [])]
        section.tables.append(_fairness_table(sub, sub_ci))
        section.tables.append(_groups_table(sub, sub_ci, "intersectional"))
        name = f"bars_intersectional_{source_stem(source)}.png"
        if name in plots:
            section.images.append((name, f"{source}: FPR, TPR and ACC by intersectional group"))
        out.append(section)
    return out


def _video_section(video: dict[str, Any]) -> Section:
    section = Section(f"Video level ({video['n']} videos, mean frame score per video)")
    if video.get("rows_without_video"):
        section.text.append(f"{video['rows_without_video']} frames without a video id are not in this section.")
    section.tables.append(_overall_table(video, {}))
    section.tables.append(_fairness_table(video, {}))
    section.tables.append(_groups_table(video, {}, "intersectional"))
    return section


def sections(report: dict[str, Any], plots: dict[str, bytes]) -> list[Section]:
    """What the report shows, in order."""
    ci = report.get("ci") or {}
    by_source = report.get("by_source") or {}
    pooled = len(by_source.get("sources", {})) > 1
    scope = " (pooled: all sources together)" if pooled else ""
    intro = Section("Summary", level=2)
    intro.warnings += [(f"{w['scope']}: " if "scope" in w else "") + w["message"] for w in report.get("warnings", [])]
    intro.text.append(
        f"{report['n']} predictions from {', '.join(report.get('inputs', [])) or 'arrays'}. Predicted fake when"
        f" score >= {report['threshold']:g}. Rates are fractions; F_* fairness metrics are percent."
    )
    if ci:
        intro.text.append(
            f"Brackets: {ci['level']:.0%} intervals from {ci['resamples']} bootstrap resamples (seed {ci['seed']};"
            f" {ci['method']})."
        )
    else:
        intro.text.append("No bootstrap intervals (run with --bootstrap N to add them).")
    intro.tables.append(_overall_table(report, ci))
    out = [intro]
    if by_source.get("table") and len(by_source["table"]) >= 2:
        cross = _cross_section(by_source, ci)
        if "intra_cross.png" in plots:
            cross.images.append(("intra_cross.png", "intra vs cross datasets, coloured by the difference from intra"))
        out.append(cross)
    fairness = Section(f"Fairness{scope}")
    fairness.tables.append(_fairness_table(report, ci))
    out.append(fairness)
    for attribute in ATTRIBUTES:
        s = Section(f"Groups{scope}: {attribute}", level=3)
        s.tables.append(_groups_table(report, ci, attribute))
        if f"bars_{attribute}.png" in plots:
            s.images.append((f"bars_{attribute}.png", f"FPR, TPR and ACC by {attribute} group"))
        out.append(s)
    out.append(_left_out_section(report))
    at_eer = report.get("at_eer", {})
    if at_eer.get("threshold") is not None:
        eer = Section(f"At the overall EER threshold ({at_eer['threshold']:.4f})")
        eer.tables.append(_overall_table(at_eer, {}))
        eer.tables.append(_fairness_table(at_eer, {}))
        out.append(eer)
    if pooled:
        out.append(Section("Per source", text=["Each test set on its own, with its own intervals."]))
        out += _source_sections(by_source, plots)
    if report.get("video"):
        out.append(_video_section(report["video"]))
    curves = Section("Curves and score distributions")
    for name, caption in (("roc.png", "ROC curves by group"), ("scores.png", "score histograms by group")):
        if name in plots:
            curves.images.append((name, caption))
    if curves.images:
        out.append(curves)
    return out


def _md_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any], plots: dict[str, bytes], plot_dir: str = "plots") -> str:
    parts = ["# fairforge evaluation report"]
    for s in sections(report, plots):
        parts.append("#" * s.level + " " + s.title)
        parts += [f"> **Warning:** {w}" for w in s.warnings]
        parts += s.text
        parts += [_md_table(t) for t in s.tables]
        parts += [f"![{caption}]({plot_dir}/{name})" for name, caption in s.images]
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1150px;
       color: #222; padding: 0 1rem; }
h1 { border-bottom: 2px solid #4C72B0; padding-bottom: .3rem; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #eef2f8; }
td.num { text-align: right; white-space: nowrap; }
td.num small { color: #666; }
figure { margin: .5rem 0 1.5rem; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85rem; color: #555; }
div.warning { background: #fff4e5; border-left: 4px solid #e08a00; padding: .4rem .8rem; margin: .4rem 0; }
"""


def _html_cell(text: str) -> str:
    """Numbers right-aligned, an interval on its own smaller line under its value."""
    value, _, interval = text.partition(" [")
    try:
        float(value)
    except ValueError:
        if value != "n/a":
            return f"<td>{html.escape(text)}</td>"
    extra = f"<br><small>[{html.escape(interval)}</small>" if interval else ""
    return f'<td class="num">{html.escape(value)}{extra}</td>'


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict[str, Any], plots: dict[str, bytes]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>fairforge evaluation report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>fairforge evaluation report</h1>",
    ]
    for s in sections(report, plots):
        parts.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        parts += [f'<div class="warning"><b>Warning:</b> {html.escape(w)}</div>' for w in s.warnings]
        parts += [f"<p>{html.escape(t)}</p>" for t in s.text]
        parts += [_html_table(t) for t in s.tables]
        for name, caption in s.images:
            data = base64.b64encode(plots[name]).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
