"""Small in-memory data product repositories for tests."""

from __future__ import annotations

import textwrap

from bot.descriptor.assembly import assemble
from bot.descriptor.files import MemoryReader
from bot.descriptor.model import Descriptor

SYSTEM = """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: finance.cashflow.1
  description: Cash flow
spec:
  type: dataproduct
  owner: group:finance
  domain: finance
  mesh:
    version: 1.2.0
    dataProductOwner: user:jane
"""


def component(name: str, kind: str = "outputport", mesh: str = "", system: str = "finance.cashflow.1") -> str:
    """A Component entity's YAML; mesh is YAML text placed under spec.mesh."""
    body = textwrap.indent(textwrap.dedent(mesh).strip("\n"), "    ") if mesh.strip() else "    version: 1.0.0"
    return (
        "apiVersion: backstage.io/v1alpha1\n"
        "kind: Component\n"
        "metadata:\n"
        f"  name: finance.cashflow.1.{name}\n"
        "spec:\n"
        f"  type: {kind}\n"
        f"  system: {system}\n"
        "  mesh:\n"
        f"{body}\n"
    )


def repository(components: dict[str, str], system: str = SYSTEM, **extra: str) -> MemoryReader:
    """A repository with the System at the root and each component in components/<name>/catalog-info.yaml."""
    files = {"catalog-info.yaml": system}
    files.update({f"components/{name}/catalog-info.yaml": text for name, text in components.items()})
    files.update(extra)
    return MemoryReader(files)


def descriptor_of(components: dict[str, str], environment: str = "development", **extra: str) -> Descriptor:
    """The assembled descriptor of such a repository."""
    return assemble(repository(components, **extra), environment)
