"""The documentation ships with the code: every reference resolves inside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT = (".py", ".md", ".yaml", ".sh", ".toml", ".cfg")


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    files = [REPO / name for name in out.splitlines() if name.endswith(TEXT)]
    return [f for f in files if f.is_file()]


def test_every_docs_reference_in_the_code_names_a_file_that_exists() -> None:
    cited = {}
    for file in tracked():
        for match in re.finditer(r"\bdocs/([\w-]+\.md)", file.read_text(encoding="utf-8")):
            cited.setdefault(match.group(1), file.relative_to(REPO).as_posix())
    assert cited, "the code cites docs/ pages"
    missing = {page: where for page, where in cited.items() if not (REPO / "docs" / page).is_file()}
    assert missing == {}


def test_every_relative_link_in_the_docs_and_readme_resolves() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []


def test_no_reference_points_outside_the_repository() -> None:
    pattern = re.compile(r"DESIGN\.md|\.\./shared|seed paper|not reachable from the build")
    hits = [
        f"{f.relative_to(REPO)}:{n}"
        for f in tracked()
        if f.name != "test_docs.py"
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
