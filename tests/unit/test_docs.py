"""The documentation stays true to the code: the configuration page is the generated one, the README stays a
front door, and no committed file speaks of how the project was built or points outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from core.settings import Settings
from core.settings_doc import env_names, render

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 10_240
TEST_PATH = re.compile(r"`(?:pytest )?(tests/[\w/]+\.py)`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
# Words about the making of the code, not about the product; and paths that do not exist in a clone.
BUILD_WORDS = re.compile(
    # Written with character classes so that this file does not itself hold the words it looks for.
    r"i[s]sue #?\d+|design[ ]card|(?<![-\w])st[o]p \d+|review[ ]mends?|\.\./sh[a]red|/work/sh[a]red"
    r"|(?-i:\b(?:API|ARCHITECTURE|STYLE)\.md)",
    re.IGNORECASE,
)
# Files that are not ours to word (lock files, vendored assets), and this one, which names the words it looks for.
SKIPPED = re.compile(r"(^|/)[^/]*\.lock$|^api/static/|^tests/unit/test_docs\.py$")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, timeout=30
    ).stdout.split(b"\0")
    files = []
    for raw in filter(None, names):
        name = raw.decode()
        path = ROOT / name
        if SKIPPED.search(name) or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:8192]:
            files.append(path)
    return files


def test_configuration_page_is_the_generated_one() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == render(), "docs/configuration.md is stale: run `python -m core.settings_doc docs/configuration.md`"


def test_every_setting_is_on_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} needs a description"
        assert all(f"`{env}`" in page for env in env_names(field)), name


def test_readme_is_a_front_door_of_at_most_10_kib() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move depth into docs/"


def test_no_file_speaks_of_how_the_project_was_built() -> None:
    files = tracked_text_files()
    assert any(path.name == "README.md" for path in files)
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            found = BUILD_WORDS.search(line)
            if found:
                hits.append(f"{path.relative_to(ROOT)}:{number}: {found.group(0)!r}")
    assert not hits, "\n".join(hits)


def test_the_word_check_catches_what_it_is_for() -> None:
    # Joined at run time, so that this file does not itself hold the words.
    samples = [
        "see iss" + "ue 12",
        "Iss" + "ue #3",
        "the design" + " card",
        "st" + "op 17's code",
        "a review" + " mend",
        "../sh" + "ared/x",
    ]
    for text in samples:
        assert BUILD_WORDS.search(text), text
    for text in ("docs/api.md", "an issuer", "non-st" + "op 24 h", "shared memory"):
        assert not BUILD_WORDS.search(text), text


def relative_links() -> list[tuple[Path, str]]:
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")]
    found = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target and not target.startswith("mailto:"):
                found.append((page, target))
    return found


def test_every_relative_link_leads_to_a_file_of_the_repository() -> None:
    links = relative_links()
    assert len(links) >= 20
    broken = []
    for page, target in links:
        resolved = (page.parent / target).resolve()
        if not resolved.exists():
            broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_every_test_file_the_docs_name_exists() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    named = {name for page in pages for name in TEST_PATH.findall(page.read_text(encoding="utf-8"))}
    assert len(named) >= 10
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, missing
