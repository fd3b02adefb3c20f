"""The plan diff as merge request comment markdown: layout, escaping of untrusted text, the size budget."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.descriptor.model import Descriptor
from bot.engine.plan_diff import plan_diff
from bot.forge.plan_report import CUT_NOTE, UNCHANGED_LISTED, plan_markdown
from tests.builders import component, descriptor_of

CMP = "urn:dmb:cmp:finance:cashflow:1:"
PORT = """\
version: 1.0.0
dependsOn: [urn:dmb:cmp:finance:cashflow:1:ledger]
dataContract:
  schema:
    - name: business_unit
      dataType: TEXT
    - name: amount
      dataType: DECIMAL
"""
DESIRED = descriptor_of({"daily": component("daily", mesh=PORT), "ledger": component("ledger", "storage"),
                         "load": component("load", "workload")})


def deployed_copy(descriptor: Descriptor = DESIRED) -> dict[str, Any]:
    """The descriptor as the engine keeps it once deployed: through JSON."""
    return json.loads(json.dumps(descriptor.data))


GOLDEN = f"""\
### meshbot plan for `development`: data product changed; 1 to add, 1 to change, 1 to remove, 1 unchanged

Data product `urn:dmb:dp:finance:cashflow:1` · compared with what is deployed in `development`.

| plan | components |
|---|---:|
| ➕ to add | 1 |
| ✏️ to change | 1 |
| ➖ to remove | 1 |
| ⚪ unchanged | 1 |

#### ✏️ Data product (1 field changed)

- version `1.1.0` → `1.2.0` · `catalog-info.yaml` line 11, column 14

#### ➕ To add (1)

- `{CMP}load` (workload) · `components/load/catalog-info.yaml` line 8, column 3

#### ✏️ To change (1)

- `{CMP}daily` (outputport) · `components/daily/catalog-info.yaml` line 8, column 3
  - dependsOn \\+ `…:ledger` · `components/daily/catalog-info.yaml` line 10, column 17
  - column `amount` retyped TEXT → DECIMAL · `components/daily/catalog-info.yaml` line 16, column 21
  - column `region` removed · `components/daily/catalog-info.yaml` line 12, column 7

#### ➖ To remove (1)

- `{CMP}old` old job (workload)

⚪ 1 unchanged: `{CMP}ledger`
"""


def test_golden_markdown():
    deployed = deployed_copy()
    deployed["version"] = "1.1.0"
    daily = deployed["components"][0]
    daily["dataContract"]["schema"][1]["dataType"] = "TEXT"
    daily["dataContract"]["schema"].append({"name": "region", "dataType": "TEXT"})
    daily["dependsOn"] = []
    deployed["components"].pop()  # load: to add
    deployed["components"].append({"id": CMP + "old", "kind": "workload", "name": "old job"})
    assert plan_markdown(plan_diff(DESIRED, deployed), 60_000) == GOLDEN


def test_nothing_deployed_and_nothing_to_change():
    body = plan_markdown(plan_diff(DESIRED, None), 60_000)
    assert body.startswith("### meshbot plan for `development`: nothing deployed: 3 to add\n")
    assert "nothing is deployed in `development` yet: every component is new." in body
    assert body.index(f"`{CMP}ledger`") < body.index(f"`{CMP}daily`")  # plan order
    assert "#### ✏️" not in body and "more changes" not in body

    body = plan_markdown(plan_diff(DESIRED, deployed_copy()), 60_000)
    assert body.startswith("### meshbot plan for `development`: nothing to change\n")
    assert "####" not in body
    assert f"⚪ 3 unchanged: `{CMP}ledger`, `{CMP}load`, `{CMP}daily`\n" in body  # plan order


HOSTILE = """\
id: "urn:dmb:cmp:finance:cashflow:1:x`y<b>"
name: "<script>alert(1)</script> @admin"
version: 1.0.0
dataContract:
  schema:
    - name: "a`b"
      dataType: "<img src=x onerror=alert(1)>"
    - name: "**bold** [link](http://evil)"
      dataType: TEXT
"""


def test_hostile_names_and_values_are_inert():
    desired = descriptor_of({"evil": component("evil", mesh=HOSTILE)})
    deployed = deployed_copy(desired)
    deployed["components"][0]["dataContract"]["schema"][0]["dataType"] = "TEXT|x"
    deployed["components"][0]["dataContract"]["schema"].pop()
    deployed["components"].append({"id": CMP + "`<script>`", "kind": "<i>k</i>", "name": "``"})
    body = plan_markdown(plan_diff(desired, deployed), 60_000)
    assert "<script>alert" not in body and "<img" not in body and "<i>" not in body  # outside code spans
    assert "@admin" not in body and "@\u200badmin" in body
    assert ("- ``urn:dmb:cmp:finance:cashflow:1:x`y<b>`` &lt;script&gt;alert\\(1\\)&lt;/script&gt; @\u200badmin "
            "(outputport) · `components/evil/catalog-info.yaml` line 8, column 3\n") in body
    assert ("  - column ``a`b`` retyped TEXT\\|x → &lt;img src=x onerror=alert\\(1\\)&gt; · "
            "`components/evil/catalog-info.yaml` line 15, column 21\n") in body
    # inside a code span markdown is inert: no link, no bold
    assert "  - column `**bold** [link](http://evil)` added \\(TEXT\\) · " in body
    assert f"- `` {CMP}`<script>` `` \\`\\` (&lt;i&gt;k&lt;/i&gt;)\n" in body


def many_changes(components: int, columns: int, removed: int = 0, unchanged: int = 0) -> tuple[Descriptor, dict]:
    """A data product whose output ports each gained columns, plus removed and unchanged components."""
    schema = "".join(f"    - name: column_{n:03}\n      dataType: TEXT\n" for n in range(columns))
    ports = {f"port{i:02}": component(f"port{i:02}", mesh=f"version: 1.0.0\ndataContract:\n  schema:\n{schema}")
             for i in range(components)}
    same = {f"same{i:02}": component(f"same{i:02}", "workload") for i in range(unchanged)}
    desired = descriptor_of({**ports, **same})
    deployed = deployed_copy(desired)
    for part in deployed["components"]:
        if "dataContract" in part:
            part["dataContract"]["schema"] = []
    deployed["components"] += [{"id": f"{CMP}gone{i:02}", "kind": "workload"} for i in range(removed)]
    return desired, deployed


def test_over_the_budget_the_details_are_cut_and_counted():
    desired, deployed = many_changes(components=12, columns=30)
    body = plan_markdown(plan_diff(desired, deployed), 4_000)
    assert len(body) <= 4_000
    shown = len(re.findall(r"^  - column `column_\d+` added", body, flags=re.MULTILINE))
    assert 0 < shown < 12 * 30
    assert body.endswith(f"\n> …{12 * 30 - shown} more changes; run `meshbot diff` for all.\n")
    assert all(f"`{CMP}port{i:02}`" in body for i in range(12))  # every component before any detail
    assert CUT_NOTE not in body


def test_removals_are_kept_first_when_even_components_do_not_fit():
    desired, deployed = many_changes(components=40, columns=2, removed=5)
    body = plan_markdown(plan_diff(desired, deployed), 3_000)
    assert len(body) <= 3_000
    assert all(f"`{CMP}gone{i:02}`" in body for i in range(5))
    assert "#### ✏️ To change (40)" in body
    left_out = int(re.search(r"…(\d+) more changes", body).group(1))
    shown_components = len(re.findall(rf"^- `{CMP}port\d+`", body, flags=re.MULTILINE))
    shown_columns = len(re.findall(r"^  - column", body, flags=re.MULTILINE))
    assert shown_components < 40
    assert left_out == (40 - shown_components) * 3 + (shown_components * 2 - shown_columns)


def test_many_unchanged_components_are_counted_not_listed():
    desired, deployed = many_changes(components=1, columns=1, unchanged=UNCHANGED_LISTED + 2)
    body = plan_markdown(plan_diff(desired, deployed), 60_000)
    assert f"⚪ {UNCHANGED_LISTED + 2} unchanged components (not listed one by one).\n" in body
    assert f"{CMP}same00" not in body

    desired, deployed = many_changes(components=1, columns=1, unchanged=UNCHANGED_LISTED)
    body = plan_markdown(plan_diff(desired, deployed), 60_000)
    assert f"⚪ {UNCHANGED_LISTED} unchanged: `{CMP}same00`, " in body


def test_a_limit_below_the_fixed_parts_still_holds():
    desired, deployed = many_changes(components=3, columns=3)
    body = plan_markdown(plan_diff(desired, deployed), 300)
    assert len(body) == 300 and body.endswith(CUT_NOTE)
    assert plan_markdown(plan_diff(desired, deployed), 10) == body[:10]


def test_the_environments_prune_mode_is_said_under_the_components_to_remove():
    deployed = deployed_copy()
    deployed["components"].append({"id": CMP + "old", "kind": "workload", "name": "old job"})
    diff = plan_diff(DESIRED, deployed)
    said = {mode: plan_markdown(diff, 60_000, prune=mode).split(f"- `{CMP}old` old job (workload)\n", 1)[1]
            for mode in ("auto", "confirm", "never")}
    assert said["auto"].startswith("\n_A deploy to `development` unprovisions them after its other tasks, "
                                   "dependents first; their data is kept._\n")
    assert said["confirm"].startswith("\n_A deploy to `development` keeps them until one with `--prune` "
                                      "(`/deploy development --prune`): prune is `confirm` there._\n")
    assert said["never"].startswith("\n_Deploys to `development` never remove them (prune is `never` there)")
    assert "_A deploy" not in plan_markdown(diff, 60_000)  # `meshbot diff` knows no server configuration
