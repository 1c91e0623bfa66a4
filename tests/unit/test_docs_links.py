"""The documentation stands alone: every link in README.md and docs/*.md reaches a file of the
repository (and a heading of it, when it names one), and nothing in the repository sends a
reader to notes kept outside it."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where code, tests and documents live; build output and environments are not the repository.
SOURCES = ("src", "tests", "scripts", "docs", "benchmarks")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".html", ".js", ".css", ".json", ".lua", ".txt"}

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def prose(markdown: str) -> str:
    """The document without its code blocks and code spans, where brackets are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def links(markdown: str) -> list[str]:
    """Every link target of a Markdown document, inline and reference-style."""
    text = prose(markdown)
    return _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # code spans keep their text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    kept = "".join(
        character
        for character in text.lower()
        if character in " -_" or unicodedata.category(character)[0] in "LN"
    )
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a document: its headings' (a repeated heading gets -1, -2, ... as on
    GitHub) and those written as `<a id="...">`."""
    found: set[str] = set(_HTML_ANCHOR.findall(_FENCE.sub("", markdown)))
    seen: dict[str, int] = {}
    for _, title in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def is_external(target: str) -> bool:
    """Whether a link leaves for the web or mail (anything with a scheme)."""
    return bool(urlsplit(target).scheme)


def test_the_documents_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/api.md", "docs/design.md", "docs/deploy.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file_and_heading_of_the_repository(
    document: Path,
) -> None:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in links(text):
        if is_external(target):
            continue
        parts = urlsplit(target)
        path, fragment = unquote(parts.path), unquote(parts.fragment)
        destination = (document.parent / path).resolve() if path else document
        if not destination.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
            continue
        if not destination.exists():
            broken.append(f"{target}: no such file")
            continue
        in_markdown = destination.suffix == ".md"
        if fragment and in_markdown and fragment not in anchors(destination.read_text("utf-8")):
            broken.append(f"{target}: no heading #{fragment} in {destination.name}")
    assert not broken, f"{document.name}: " + "; ".join(broken)


def test_the_link_reader_sees_links_anchors_and_escapes_the_way_github_does() -> None:
    sample = (
        "See [the API](docs/api.md#errors-and-their-codes) and [x][ref].\n"
        "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n[ref]: ../elsewhere/notes.md\n"
        "## Errors and their codes\n## `GET /readyz` (no auth)\n## Errors and their codes\n"
        '<a id="check-access"></a>**Access.**\n'
    )
    assert links(sample) == ["docs/api.md#errors-and-their-codes", "../elsewhere/notes.md"]
    assert anchors(sample) == {
        "errors-and-their-codes",
        "errors-and-their-codes-1",
        "get-readyz-no-auth",
        "check-access",
    }
    outside = (ROOT / "README.md").parent / "../elsewhere/notes.md"
    assert not outside.resolve().is_relative_to(ROOT)
    assert is_external("https://example.com/")
    assert not is_external("docs/api.md")


def test_nothing_in_the_repository_sends_the_reader_to_notes_outside_it() -> None:
    # Spelled in parts, so that this file does not name what it looks for.
    forbidden = ["../" + "shared", "/work/" + "shared", "API" + ".md", "DESIGN" + ".md"]
    files = [ROOT / "README.md"] + [
        path
        for folder in SOURCES
        if (ROOT / folder).is_dir()
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts
    ]
    naming = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in files
        for word in forbidden
        if word in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert not naming, "these name notes outside the repository: " + ", ".join(naming)
