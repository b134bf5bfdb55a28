"""The dataset card: README.md with the Hub's YAML metadata and a body a reviewer can trust.

The YAML carries what the Hub and `datasets` read (license, task_categories, tags,
size_categories, `configs` pointing at the Parquet shards, `dataset_info` with the features as
`datasets` writes them) plus `components`: every model and dataset the set was made with and its
licence. The body says what the set is, how many images each cell holds, how it was made, which
non-commercial terms it inherits, what it is for, and where it is biased.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

from fairforge.config.balance import ReleaseConfig

from .audit import audit_table
from .licenses import INSIGHTFACE_TERMS, License, dataset_license, license_of
from .report import _md_table

#: What a Hub repo id may look like (`name` or `owner/name`); anything else could break the card.
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")

TAGS = ["deepfake-detection", "fairness", "synthetic", "faces", "demographic-balance", "fairforge"]


def escape(value: Any) -> str:
    """A manifest or provenance value as inert Markdown text.

    The Hub renders a card's Markdown with inline HTML, so a method or generator name such as
    `<img src=x onerror=...>` would run in a reader's browser: `<`, `>`, `&` and quotes become
    entities, `|` is escaped (it would end a table cell), backticks and newlines are neutralized.
    """
    text = html.escape(str(value), quote=True)
    return text.replace("|", "\\|").replace("`", "&#96;").replace("\r", " ").replace("\n", " ")


def _safe_table(frame: pd.DataFrame) -> str:
    """`_md_table` of `frame` with every text cell (and the header) escaped."""
    clean = frame.copy()
    clean.columns = [escape(c) for c in clean.columns]
    for column in clean.columns:
        if clean[column].dtype == object or str(clean[column].dtype).startswith(("string", "str", "category")):
            clean[column] = [v if v is None or (isinstance(v, float) and v != v) else escape(v) for v in clean[column]]
    return _md_table(clean)


def size_category(n: int) -> str:
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]
    for bound, name in bounds:
        if n < bound:
            return name
    return "10M<n<100M"


def components(provenance: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every model / dataset the release depends on, with its role and licence."""
    items: list[tuple[str, str]] = [(g, "generator") for g in provenance.get("generators", [])]
    items += [
        (
            c.get("path") or c.get("arch") or "?",
            f"attribute classifier ({c.get('backend')}"
            + (f", {c['races']}-race checkpoint, races mapped by name" if c.get("races") else "")
            + ")",
        )
        for c in provenance.get("classifiers", [])
    ]
    if provenance.get("face_detector") == "dlib":
        items.append(("dlib", "face detector"))
    if provenance.get("identity_model"):
        items.append((provenance["identity_model"], "same-identity filter (face recognition)"))
    items += [(s, "real data") for s in provenance.get("real_sources", [])]
    out = []
    for name, role in items:
        lic: License = license_of(str(name), overrides)
        out.append(
            {
                "name": str(name),
                "role": role,
                "license": lic.license,
                "non_commercial": lic.non_commercial,
                "url": lic.url,
            }
        )
    return out


def card_metadata(
    features_yaml: dict[str, Any],
    split_sizes: Mapping[str, int],
    split_bytes: Mapping[str, int],
    comps: Sequence[Mapping[str, Any]],
    cfg: ReleaseConfig,
) -> dict[str, Any]:
    license_id = dataset_license([License(c["license"], c["non_commercial"]) for c in comps], cfg.license)
    return {
        "license": license_id,
        "pretty_name": cfg.pretty_name,
        "task_categories": ["image-classification"],
        "tags": TAGS,
        "size_categories": [size_category(sum(split_sizes.values()))],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in split_sizes],
            }
        ],
        "dataset_info": {
            **features_yaml,
            "splits": [
                {"name": s, "num_bytes": int(split_bytes[s]), "num_examples": int(n)} for s, n in split_sizes.items()
            ],
            "download_size": int(sum(split_bytes.values())),
            "dataset_size": int(sum(split_bytes.values())),
        },
        "components": [dict(c) for c in comps],
    }


def card_body(
    meta: Mapping[str, Any],
    manifest: pd.DataFrame,
    provenance: Mapping[str, Any],
    acceptance: pd.DataFrame | None,
    repo_id: str | None,
    referenced: pd.DataFrame | None = None,
) -> str:
    comps = meta["components"]
    nc = [c for c in comps if c["non_commercial"]]
    splits = manifest.groupby("split").agg(
        rows=("id", "size"),
        real=("label", lambda s: int((s == 0).sum())),
        fake=("label", lambda s: int((s == 1).sum())),
    )
    cells = (
        manifest.assign(age=manifest["age"].fillna("unknown"))
        .groupby(["gender", "race", "age", "method", "label"], dropna=False)
        .size()
    )
    cells = cells.rename("images").reset_index()
    filters = provenance.get("filters", {})
    lines = [
        f"# {escape(meta['pretty_name'])}",
        "",
        "## Description",
        "",
        "Face images for training and testing deepfake detectors whose errors are spread evenly over "
        "demographic groups. The synthetic part is balanced by construction: every cell (gender x race"
        f"{' x age' if 'age' in manifest and manifest['age'].notna().any() else ''}) holds the same number of "
        "images per method, each image's attributes confirmed by an attribute classifier; real images "
        "from existing datasets may be mixed in. `label` is 0 for real/pristine faces and 1 for fakes "
        "(face swaps, self-blended images); `method` names how an image was made. Splits (`train`, "
        "`validation`, `test`) are person-disjoint: no person, nor any swap or blend made from their face, "
        "appears in two splits (`identity` is the person in an image, `src_identity` the person whose face "
        "a fake carries; a generated face is its own person). Every fake was made from faces of its own split.",
        "",
        "## Splits",
        "",
        _safe_table(splits.reset_index()),
        "",
        *_real_section(manifest, referenced, comps),
        "## Images per cell",
        "",
        _safe_table(cells),
        "",
        "## How it was made",
        "",
        "Made with fairforge (`fairforge generate` -> `fairforge balance` -> "
        "`fairforge release`). Generators, classifiers and filters:",
        "",
        _safe_table(pd.DataFrame(comps, columns=["name", "role", "license", "non_commercial", "url"])),
        "",
        f"Methods: {', '.join(escape(m) for m in provenance.get('methods', sorted(manifest['method'].unique())))}. "
        f"{escape(_filters_text(filters))}",
        "",
    ]
    if acceptance is not None and len(acceptance):
        rates = acceptance.groupby(["gender", "race"]).agg(
            made=("made", "sum"), passed=("passed", "sum"), kept=("kept", "sum")
        )
        rates["acceptance"] = rates["passed"] / rates["made"].where(rates["made"] > 0)
        lines += [
            "Acceptance per group (images that passed every filter / images generated): the generator's own "
            "bias, corrected by generating more where it is low.",
            "",
            _safe_table(rates.reset_index()),
            "",
        ]
    lines += [
        "## Licence and terms inherited",
        "",
        f"This dataset is released under `{escape(meta['license'])}`.",
    ]
    if nc:
        names = "; ".join(f"{escape(c['name'])} ({escape(c['role'])}: {escape(c['license'])})" for c in nc)
        lines += [
            "",
            "It was made with components whose terms forbid commercial use, and it inherits them: "
            f"{names}. Use it for non-commercial research only.",
        ]
        if any(c["license"] == INSIGHTFACE_TERMS.license for c in nc):
            lines += [
                "",
                "In particular, images made or judged with insightface models (inswapper_128, the buffalo_l "
                "pack, its recognition models) fall under insightface's non-commercial research licence.",
            ]
    lines += [
        "",
        "## Intended use",
        "",
        "Training and evaluating deepfake detectors, and measuring and reducing their demographic "
        "disparities (false positive rate, accuracy and equalized-odds gaps between groups). Not for "
        "identifying people, inferring anyone's gender, race or age, or any surveillance use.",
        "",
        *_audit_lines(provenance.get("audit")),
        "## Bias and limitations",
        "",
        "- Gender, race and age are coarse, externally assigned categories (the attribute classifier's "
        "and the prompt's), not anyone's self-identification; the taxonomy's groups hide large variation inside them.",
        "- The attribute classifier has its own error rates per group; where it is less accurate, its "
        "verification admits more wrong images and rejects more right ones.",
        "- Balance holds per cell for the synthetic part; the acceptance table above shows how unevenly "
        "the generator produced each cell before balancing. Mixed-in real data keeps its own demographic shape.",
        "- Synthetic faces and the fakes made from them differ from in-the-wild deepfakes; a detector "
        "trained here should be tested on real deepfake datasets too.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        f"ds = load_dataset({repo_id or '<folder or repo id>'!r})",
        "```",
        "",
    ]
    return "\n".join(lines)


def _audit_lines(audit: Mapping[str, Any] | None) -> list[str]:
    """The label-shortcut audit of the balanced set (`fairforge audit`), when it ran."""
    if not audit:
        return []
    flagged = "; ".join(audit.get("exceeded", [])) or "none"
    return [
        "## Label-shortcut audit",
        "",
        "What a detector could learn besides the manipulation: a cross-validated classifier on what lies "
        "outside the face (colour, sharpness, high frequencies) and on the file (format, encoder settings, "
        "size), fakes against the real rows they are paired with, and synthetic against each imported "
        f"source. AUC 0.5 means no such shortcut; above {audit['thresholds']['max_auc']} is flagged. "
        "`changed outside face` is the fraction of pixels outside the face that differ between a fake and "
        "its partner.",
        "",
        _md_table(audit_table(audit)),
        "",
        f"Flagged: {flagged}.",
        "",
    ]


def _filters_text(filters: Mapping[str, Any]) -> str:
    """The balance settings in two sentences (from DIR/provenance.json)."""
    if not filters:
        return "The balance stage's settings were not recorded."
    verify, face = filters.get("verify", {}), filters.get("face", {})
    match = verify.get("match", [])
    conditions = []
    if match:
        tau = {k: v for k, v in verify.get("tau", {}).items() if k in match}
        conditions.append(
            f"the attribute classifier confirmed the intended {', '.join(match)} (confidence at least {tau})"
        )
    if face.get("detector") == "manifest":
        conditions.append(f"the generator's face detector scored it at least {face.get('min_score')}")
    elif face.get("detector") == "dlib":
        conditions.append(f"dlib found a face scoring at least {face.get('min_score')}")
    conditions += [
        f"it was at least {filters.get('min_size')} px",
        f"sharp (variance of Laplacian >= {filters.get('sharpness', {}).get('min')})",
        f"not a near duplicate (perceptual hash within {filters.get('dedup', {}).get('max_hamming')} bits)",
    ]
    if filters.get("identity", {}).get("model"):
        conditions.append(
            f"not the same identity as an earlier image (face-embedding cosine < {filters['identity']['threshold']})"
        )
    text = "An image was kept only when " + "; ".join(conditions) + "."
    if not match:
        text += " Attribute verification was off: the classifier's verdicts are recorded in pred_* only."
    return (
        text
        + f" Each cell was then capped at {filters.get('target_per_cell')} images, split over methods as "
        + f"{filters.get('method_mix')}."
    )


def _real_section(
    manifest: pd.DataFrame, referenced: pd.DataFrame | None, comps: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Where the real rows are (included, or listed by id), what `identity` means for each source,
    and the licence each is under."""
    from fairforge.importers.persons import identity_level

    from .split import SYNTHETIC_SOURCE

    included = manifest[manifest["source"].astype(str) != SYNTHETIC_SOURCE]
    listed = referenced if referenced is not None else included.iloc[:0]
    sources = sorted(set(included["source"].astype(str)) | set(listed["source"].astype(str)))
    if not sources:
        return []
    licences = {c["name"]: c["license"] for c in comps if c.get("role") == "real data"}
    table = pd.DataFrame(
        [
            {
                "source": s,
                "rows": int((included["source"] == s).sum() + (listed["source"] == s).sum()),
                "in this release": "yes" if (included["source"] == s).any() else "no: listed by id",
                "identity": identity_level(s),
                "license": licences.get(s, "see the source dataset"),
            }
            for s in sources
        ]
    )
    lines = ["## Real data", "", _md_table(table), ""]
    if len(listed):
        lines += [
            "Real rows are not redistributed here: `references/real.parquet` lists each one by `id` (the "
            "importer's `source/relative path`), `source`, `split`, `identity` and attributes. Import the "
            "datasets you hold with `fairforge import` and select those ids to rebuild the exact mix.",
            "",
        ]
    return lines


def render_card(meta: Mapping[str, Any], body: str) -> str:
    return "---\n" + yaml.safe_dump(dict(meta), sort_keys=False, allow_unicode=True) + "---\n\n" + body
