"""Issue 15: a command given a component's folder finds the repository root; a folder that is none is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.cli.repository_root import find_root
from tests.builders import SYSTEM, component

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def repository(folder: Path) -> Path:
    return write(folder, {"catalog-info.yaml": SYSTEM,
                          "components/ledger/catalog-info.yaml": component("ledger"),
                          "components/report/catalog-info.yaml": component("report")})


def meshbot(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *arguments], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}, timeout=60)


def test_the_root_is_the_nearest_folder_holding_the_system_then_the_git_root(tmp_path):
    repo = repository(tmp_path / "repo")
    assert find_root(str(repo)) is not None and find_root(str(repo)).levels_up == 0
    found = find_root(str(repo / "components" / "ledger"))
    assert found is not None and (found.folder, found.levels_up) == (repo, 2)
    assert found.shown("components/ledger") == "."
    assert "System" in found.reason
    # A git repository whose System is not at its root: the git root.
    monorepo = write(tmp_path / "mono", {"products/cashflow/catalog-info.yaml": SYSTEM, "docs/notes.md": "x\n"})
    (monorepo / ".git").mkdir()
    git = find_root(str(monorepo / "docs"))
    assert git is not None
    assert (git.folder, git.levels_up, git.reason) == (monorepo, 1, "the root of its git repository")
    # A catalog file whose YAML is broken still names its System, so its own error is shown.
    broken = write(tmp_path / "broken", {"catalog-info.yaml": "kind: System\nmetadata: {name: [\n", "a/x.txt": ""})
    assert find_root(str(broken / "a")).folder == broken
    assert find_root(str(write(tmp_path / "nothing", {"a/b.txt": "x"}))) is None


def test_check_from_a_components_folder_uses_the_repository_root_and_says_so(tmp_path):
    repository(tmp_path / "repo")
    completed = meshbot("check", ".", cwd=tmp_path / "repo" / "components" / "ledger")
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ("meshbot: using the repository root '../..' (its catalog-info.yaml holds the data "
                                "product's System)\n")
    assert "urn:dmb:dp:finance:cashflow:1 (development), 2 components" in completed.stdout


@pytest.mark.parametrize("command", ["descriptor", "plan"])
def test_every_command_taking_path_finds_the_root(tmp_path, command, capsys):
    repo = repository(tmp_path / "repo")
    assert main([command, str(repo / "components" / "report")]) == 0
    assert "finance:cashflow:1:ledger" in capsys.readouterr().out


def test_errors_from_the_root_are_named_relative_to_where_the_person_stands(tmp_path):
    repo = repository(tmp_path / "repo")
    (repo / "components" / "report" / "catalog-info.yaml").write_text(
        component("report", mesh="    version: 1.0.0\n    dependsOn: [urn:dmb:cmp:finance:cashflow:1:ledgr]\n"))
    completed = meshbot("check", ".", cwd=repo / "components" / "report")
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[1:] == [
        "catalog-info.yaml:10:17: dependsOn 'urn:dmb:cmp:finance:cashflow:1:ledgr' is not a component of this data "
        "product (did you mean 'urn:dmb:cmp:finance:cashflow:1:ledger'?)"
    ]


def test_a_folder_with_no_repository_and_no_system_is_refused_without_reading_it(tmp_path, capsys):
    big = write(tmp_path / "big", {f"d{i}/f{i}.txt": "x\n" for i in range(50)})
    # A data product deep inside is not looked for: the folder is refused before any walk.
    repository(big / "somewhere" / "deep")
    assert main(["check", str(big)]) == 2
    assert capsys.readouterr().err == (
        f"meshbot: '{big}' is not in a data product repository: no catalog-info.yaml with a 'kind: System' entity "
        "in it or in a folder above it, and no git repository (.git) around it; give the repository's folder\n"
    )


def test_an_unknown_kind_is_a_warning_on_stderr_and_in_the_report(tmp_path):
    repo = repository(tmp_path / "repo")
    write(repo, {"docs/catalog-info.yaml": "apiVersion: backstage.io/v1alpha1\nkind: Locaton\nmetadata:\n"
                                           "  name: docs\nspec:\n  targets: [a.yaml]\n"})
    completed = meshbot("check", "repo", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    warning = "kind 'Locaton' is not a Backstage kind (did you mean 'Location'?); meshbot ignores 'docs'"
    assert completed.stderr == f"repo/docs/catalog-info.yaml:2:7: warning: {warning}\n"
    assert f"    repo/docs/catalog-info.yaml:2:7: kind: {warning}" in completed.stdout
