"""The documentation holds together: relative links resolve, and docs/cli.md names only commands that exist."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text in lower case, spaces as dashes, other punctuation dropped."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(heading) for heading in HEADING.findall(FENCE.sub("", page.read_text()))}


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not ours to check


def test_the_pages_exist():
    names = {page.name for page in DOCS}
    assert {"README.md", "cli.md", "configuration.md", "operations.md", "descriptors.md", "policies.md",
            "tech-adapters.md", "merge-request-commands.md", "webhooks.md", "deploying.md", "templates.md",
            "architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: {destination} does not exist")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target}: no heading '#{fragment}' in {destination.relative_to(ROOT)}")
    assert broken == []


def test_the_readme_links_every_docs_page():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(ROOT / "README.md")}
    assert [page.name for page in DOCS if page not in linked] == []


def test_docs_readme_lists_every_page():
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / target.partition("#")[0]).resolve() for target in relative_links(index)}
    assert [page.name for page in DOCS if page != index and page not in linked] == []


def meshbot_help(*arguments: str) -> set[str]:
    """The commands (or actions) that `meshbot ... --help` lists."""
    completed = subprocess.run([sys.executable, "-m", "bot.cli", *arguments, "--help"], cwd=ROOT, capture_output=True,
                               text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert completed.returncode == 0, completed.stderr
    listing = completed.stdout.split("positional arguments:")[1].split("options:")[0]
    return set(re.findall(r"^ {4}([a-z][a-z-]*)\b", listing, re.MULTILINE))


def test_each_command_in_docs_cli_md_exists():
    text = (ROOT / "docs" / "cli.md").read_text()
    blocks = [match.group(0) for match in FENCE.finditer(text)]
    spans = [match.group(0) for match in CODE_SPAN.finditer(FENCE.sub("", text))]
    code = "\n".join(blocks + spans)
    mentioned = set(re.findall(r"\bmeshbot ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code))
    commands = meshbot_help()
    assert {"check", "deploy", "serve", "config"} <= commands
    groups = {command: meshbot_help(command) for command in ("adapter", "config")}
    unknown = sorted(" ".join(filter(None, pair)) for pair in mentioned if pair[0] not in commands
                     or (pair[0] in groups and pair[1] and pair[1] not in groups[pair[0]]))
    assert unknown == [], "docs/cli.md names commands that `meshbot --help` does not list"
    documented = {command for command, _ in mentioned}
    assert sorted(commands - documented) == [], "commands that docs/cli.md does not mention"
