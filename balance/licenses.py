"""Licences of the models and datasets a release can be made with.

The dataset card must say under which terms every generator, classifier, detector and real
dataset was used, and a set made with a non-commercial model inherits its terms. `KNOWN` covers
the models fairforge's presets name; `release.licenses` in the config adds or overrides entries
(keyed by a case-insensitive substring of the model's name or path). Anything unmatched is listed
as `unknown` and treated as non-commercial until the user says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fairforge.config.balance import LicenseConfig


@dataclass(frozen=True)
class License:
    license: str
    non_commercial: bool
    url: str | None = None


INSIGHTFACE_TERMS = License(
    "insightface model licence: non-commercial research purposes only",
    True,
    "https://github.com/deepinsight/insightface#license",
)

#: Substring (lower case) -> licence; the first match in this order wins.
KNOWN: dict[str, License] = {
    "fairforge/tiny": License("apache-2.0 (random-weight tiny model made by fairforge)", False),
    "tiny:": License("apache-2.0 (random-weight tiny model made by fairforge)", False),
    "inswapper": INSIGHTFACE_TERMS,
    "buffalo": INSIGHTFACE_TERMS,
    "antelopev2": INSIGHTFACE_TERMS,
    "w600k": INSIGHTFACE_TERMS,
    "insightface": INSIGHTFACE_TERMS,
    "fairface": License("cc-by-4.0 (FairFace)", False, "https://github.com/dchen236/FairFace"),
    "flux.1-dev": License(
        "FLUX.1 [dev] non-commercial licence", True, "https://huggingface.co/black-forest-labs/FLUX.1-dev"
    ),
    "flux.1-schnell": License("apache-2.0", False, "https://huggingface.co/black-forest-labs/FLUX.1-schnell"),
    "stable-diffusion-xl": License(
        "openrail++ (CreativeML Open RAIL++-M)",
        False,
        "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0",
    ),
    "sdxl": License("openrail++ (CreativeML Open RAIL++-M)", False),
    "stable-diffusion-3": License(
        "Stability AI Community License", False, "https://stability.ai/community-license-agreement"
    ),
    "stable-diffusion-v1": License(
        "creativeml-openrail-m", False, "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5"
    ),
    "stable-diffusion-2": License("openrail++", False),
    "dlib": License(
        "dlib models: the 68-point predictor is trained on iBUG 300-W (non-commercial)",
        True,
        "https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/",
    ),
    "ffpp": License(
        "FaceForensics++ terms of use: non-commercial research", True, "https://github.com/ondyari/FaceForensics"
    ),
    "faceforensics": License(
        "FaceForensics++ terms of use: non-commercial research", True, "https://github.com/ondyari/FaceForensics"
    ),
    "celebdf": License(
        "Celeb-DF terms of use: non-commercial research", True, "https://github.com/yuezunli/celeb-deepfakeforensics"
    ),
    "dfdc": License("DFDC dataset licence (research)", True, "https://ai.meta.com/datasets/dfdc/"),
    "dfd": License(
        "Google/Jigsaw DeepFakeDetection dataset terms (research)", True, "https://github.com/ondyari/FaceForensics"
    ),
}
UNKNOWN_LICENSE = License("unknown: check the model's own card", True)
#: Generator names that are algorithms, not models (matched exactly).
ALGORITHMS: dict[str, License] = {
    "sbi": License("apache-2.0 (self-blended images: fairforge's implementation of an algorithm, no model)", False),
}


def license_of(name: str, overrides: Mapping[str, LicenseConfig] | None = None) -> License:
    """The licence of a model or dataset named `name` (hub id, path, or source name)."""
    lowered = name.lower()
    for key, value in (overrides or {}).items():
        if key.lower() in lowered:
            return License(value.license, value.non_commercial, value.url)
    if lowered in ALGORITHMS:
        return ALGORITHMS[lowered]
    if _is_tiny(name):
        return KNOWN["tiny:"]
    for key, value in KNOWN.items():
        if key in lowered:
            return value
    return UNKNOWN_LICENSE


def _is_tiny(name: str) -> bool:
    """A path inside fairforge's tiny-model cache (wherever `FAIRFORGE_CACHE` puts it)."""
    from fairforge.tiny import cache_root

    try:
        return Path(name).resolve().is_relative_to(cache_root().resolve())
    except (OSError, ValueError):
        return False


def dataset_license(components: Iterable[License], configured: str) -> str:
    """`configured`, or for `auto`: cc-by-nc-4.0 when any component is non-commercial or unknown."""
    if configured != "auto":
        return configured
    return "cc-by-nc-4.0" if any(c.non_commercial for c in components) else "cc-by-4.0"
