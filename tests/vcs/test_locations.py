"""Location targets in other repositories: URL forms, refusals, and assembly across two repositories."""

from __future__ import annotations

import pytest

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import InputErrors
from tests.builders import SYSTEM, component
from vcs.locations import ForgeLocations, TargetFile, parse_target
from vcs.memory import MemoryForge
from vcs.reader import RevisionReader

GITHUB, GITLAB = "https://github.com", "https://gitlab.example.com"


@pytest.mark.parametrize(("url", "web_url", "expected"), [
    ("https://github.com/acme/ledger/blob/v1.0.0/catalog-info.yaml", GITHUB,
     TargetFile("acme/ledger", "v1.0.0", "catalog-info.yaml")),
    ("https://github.com/acme/ledger/raw/0a1b2c/components/x/catalog-info.yaml", GITHUB,
     TargetFile("acme/ledger", "0a1b2c", "components/x/catalog-info.yaml")),
    ("https://raw.githubusercontent.com/acme/ledger/v2.0.0/catalog-info.yaml", GITHUB,
     TargetFile("acme/ledger", "v2.0.0", "catalog-info.yaml")),
    ("https://ghe.example.com/acme/ledger/blob/v1/catalog-info.yaml", "https://ghe.example.com",
     TargetFile("acme/ledger", "v1", "catalog-info.yaml")),
    ("https://gitlab.example.com/data/finance/ledger/-/blob/v1.0.0/catalog-info.yaml", GITLAB,
     TargetFile("data/finance/ledger", "v1.0.0", "catalog-info.yaml")),
    ("https://gitlab.example.com/git/data/ledger/-/raw/v1/a%20b/catalog-info.yaml", f"{GITLAB}/git",
     TargetFile("data/ledger", "v1", "a b/catalog-info.yaml")),
])
def test_file_urls_of_the_forge(url, web_url, expected):
    assert parse_target(url, web_url) == expected


@pytest.mark.parametrize(("url", "web_url", "reason"), [
    ("https://evil.example.com/acme/ledger/blob/v1/catalog-info.yaml", GITHUB, "only files on github.com"),
    ("https://github.com:8443/acme/ledger/blob/v1/catalog-info.yaml", GITHUB, "only files on github.com"),
    ("https://github.com/acme/ledger/tree/v1", GITHUB, "expected HOST/OWNER/REPO/blob/REF/PATH"),
    ("https://github.com/acme/ledger/blob/v1/../secrets.yaml", GITHUB, "'.' or '..'"),
    ("https://gitlab.example.com/ledger/-/blob/v1/catalog-info.yaml", GITLAB, "GROUP/PROJECT/-/blob"),
    ("ftp://github.com/acme/ledger/blob/v1/catalog-info.yaml", GITHUB, "not an http(s) URL"),
    ("https://raw.githubusercontent.com/acme/ledger/v1/x.yaml", GITLAB, "only files on gitlab.example.com"),
])
def test_other_urls_are_refused_with_the_reason(url, web_url, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_target(url, web_url)


LOCATION = """\
apiVersion: backstage.io/v1alpha1
kind: Location
metadata:
  name: remote-components
spec:
  targets:
    - https://github.com/acme/ledger/blob/v1.0.0/catalog-info.yaml
"""


def test_a_component_in_another_repository_is_assembled_at_its_pinned_tag():
    forge = MemoryForge()
    ledger = forge.add("acme/ledger", {"catalog-info.yaml": component("ledger", "storage").encode()})
    ledger.tags["v1.0.0"] = ledger.branch_head("main")
    ledger.push("main", {"catalog-info.yaml": b"kind: nonsense\n"})  # what main holds now must not matter
    product = forge.add("acme/cashflow", {"catalog-info.yaml": (SYSTEM + "---\n" + LOCATION).encode()})
    descriptor = assemble(RevisionReader(product, "main"), "development", ForgeLocations(forge, forge.web_url))
    assert [entry["id"] for entry in descriptor.components] == ["urn:dmb:cmp:finance:cashflow:1:ledger"]


def test_an_unreadable_repository_is_an_error_at_the_target():
    forge = MemoryForge()
    product = forge.add("acme/cashflow", {"catalog-info.yaml": (SYSTEM + "---\n" + LOCATION).encode()})
    with pytest.raises(InputErrors) as raised:
        assemble(RevisionReader(product, "main"), "development", ForgeLocations(forge, forge.web_url))
    message = str(raised.value.errors[0])
    assert message.startswith("catalog-info.yaml:20:7: cannot read Location target"), message
    assert "no repository acme/ledger" in message
