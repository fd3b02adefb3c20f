"""Shared fixtures for the descriptor assembly tests: fixture repositories and small entity builders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.discovery import RemoteLocations
from bot.descriptor.errors import InputErrors
from bot.descriptor.files import FileReader
from tests.cli.test_deploy import meshbot as meshbot  # the fixture running `python -m bot.cli` in its own home
from tests.deploy_harness import redis_engine as redis_engine  # a real Redis, no worker
from tests.deploy_harness import start as start  # an engine with N real workers

REPOS = Path(__file__).parent / "fixtures" / "repos"

# Line numbers matter: tests assert FILE:LINE:COLUMN positions inside these texts.
#  1 apiVersion / 2 kind / 3 metadata / 4 name (col 9) / 5 spec / 6 type (col 9) / 7 owner (col 10)
#  8 domain (col 11) / 9 mesh (col 3) / 10 version (col 14)
SYSTEM_YAML = """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: finance.cashflow.1
spec:
  type: dataproduct
  owner: group:finance
  domain: finance
  mesh:
    version: 1.0.0
"""


def make_component(
    local: str,
    kind: str = "outputport",
    system: str = "finance.cashflow.1",
    mesh: str = "    version: 1.0.0\n",
) -> str:
    """A Component of finance.cashflow.1.

    Lines: 1 apiVersion / 2 kind / 3 metadata / 4 name (col 9) / 5 spec / 6 type (col 9)
    / 7 system (col 11) / 8 mesh (col 3) / 9.. the mesh lines given (indented by four spaces).
    """
    return (
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        f"  name: finance.cashflow.1.{local}\n"
        "spec:\n"
        f"  type: {kind}\n"
        f"  system: {system}\n"
        "  mesh:\n"
        f"{mesh}"
    )


def depends(*locals_: str) -> str:
    """Mesh lines (starting at line 9) with a version and a block dependsOn list of finance.cashflow.1 parts."""
    lines = "    version: 1.0.0\n    dependsOn:\n"
    return lines + "".join(f"      - urn:dmb:cmp:finance:cashflow:1:{local}\n" for local in locals_)


@pytest.fixture
def system_yaml() -> str:
    """The minimal finance.cashflow.1 System (see SYSTEM_YAML for its line layout)."""
    return SYSTEM_YAML


@pytest.fixture
def component() -> Callable[..., str]:
    """Builds a Component of finance.cashflow.1 (see make_component)."""
    return make_component


@pytest.fixture
def depends_on() -> Callable[..., str]:
    """Builds mesh lines with dependsOn (see depends)."""
    return depends


@pytest.fixture
def repos() -> Path:
    """The folder of realistic fixture repositories."""
    return REPOS


@pytest.fixture
def assembly_errors() -> Callable[..., list[str]]:
    """Assembles and returns the errors as `FILE:LINE:COLUMN: message` strings; fails when it succeeds."""

    def run(reader: FileReader, environment: str = "development", remote: RemoteLocations | None = None) -> list[str]:
        with pytest.raises(InputErrors) as raised:
            assemble(reader, environment, remote)
        assert str(raised.value) == "\n".join(str(error) for error in raised.value.errors)
        return [str(error) for error in raised.value.errors]

    return run
