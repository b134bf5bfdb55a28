"""Who is in a real video: the person ids the benchmark datasets encode in their video names.

A split that is disjoint by *video* still leaks when one person has several videos, or when a
fake shows two people. The datasets name their videos so that the persons can be read back:

- FaceForensics++: `000` is the source video of person 000; a manipulated video `000_003` puts
  person 003's face into person 000's video (target first), so it shows both.
- DeepFakeDetection (FF++'s DFD): actors are numbered, `01__talking_angry` is actor 01, a fake
  `01_02__talking_angry__XXXX` puts actor 02's face on actor 01.
- Celeb-DF: `id0_0003` is celebrity id0; a synthesis video `id0_id16_0003` puts id16's face into
  a video of id0. Its YouTube-real videos (`00012`) have no person id: the video stands in.
- Anything else (DFDC, whose part metadata names no actors; GAN images): the video (or file).

`identity` is the target person (the one whose video it is), `src_identity` the person whose face
was put in (empty for real videos). Both are prefixed with the source so datasets never collide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Rule = Callable[[str], "tuple[str, str | None] | None"]


def _ffpp(video: str) -> tuple[str, str | None] | None:
    if m := re.fullmatch(r"(\d+)_(\d+)", video):
        return m.group(1), m.group(2)
    if re.fullmatch(r"\d+", video):
        return video, None
    return None


def _dfd(video: str) -> tuple[str, str | None] | None:
    if m := re.match(r"(\d+)_(\d+)__", video):
        return f"actor{m.group(1)}", f"actor{m.group(2)}"
    if m := re.match(r"(\d+)__", video):
        return f"actor{m.group(1)}", None
    return None


def _celebdf(video: str) -> tuple[str, str | None] | None:
    if m := re.fullmatch(r"(id\d+)_(id\d+)_\d+", video):
        return m.group(1), m.group(2)
    if m := re.fullmatch(r"(id\d+)_\d+", video):
        return m.group(1), None
    return None


#: source -> how its video names give persons
RULES: dict[str, Rule] = {"ffpp": _ffpp, "dfd": _dfd, "celebdf": _celebdf, "celebdf-v1": _celebdf}
#: what `identity` means per source, for the dataset card
LEVEL: dict[str, str] = {
    "ffpp": "person (source video id; a manipulated video t_s is linked to persons t and s)",
    "dfd": "actor (a fake is linked to both actors)",
    "celebdf": "celebrity idN (a synthesis video is linked to both; YouTube-real videos: the video)",
    "celebdf-v1": "celebrity idN (a synthesis video is linked to both; YouTube-real videos: the video)",
}
VIDEO_LEVEL = "video (the dataset names no finer person id)"


def identity_level(source: str) -> str:
    return LEVEL.get(source, VIDEO_LEVEL)


def persons(source: str, videos: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """(identity, src_identity) per video name, prefixed `source/`; the video itself when no rule applies."""
    rule = RULES.get(source)
    identity: list[str] = []
    src_identity: list[str | None] = []
    for video in videos:
        found = rule(video) if rule else None
        if found is None:
            identity.append(f"{source}/{video}")
            src_identity.append(None)
        else:
            identity.append(f"{source}/{found[0]}")
            src_identity.append(None if found[1] is None else f"{source}/{found[1]}")
    return identity, src_identity


__all__ = ["LEVEL", "RULES", "VIDEO_LEVEL", "identity_level", "persons"]
