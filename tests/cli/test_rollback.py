"""`meshbot rollback` for real: `python -m bot.cli` on the embedded Redis, local workers, the reference SQLite adapter.

Two versions of the example are deployed from a working copy; the rollback redeploys the kept descriptor of the
first (the view definition in the SQLite database comes back), refuses what it cannot do with exit 1, and names
the policy that blocks an old version under today's governance.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from tests.cli.test_deploy import EXAMPLE, PRODUCT, ROOT, Meshbot, adapters_config
from tests.servers.reference_adapter import running_adapter

VIEW_100 = 'CREATE VIEW "daily_cashflow_v" AS SELECT "business_unit", "booked_on", "net_amount" FROM "daily_cashflow"'
VIEW_110 = 'CREATE VIEW "daily_cashflow_v" AS SELECT "net_amount", "business_unit", "booked_on" FROM "daily_cashflow"'


def view_sql(database: Path, view: str = "daily_cashflow_v") -> str:
    """The definition of a view as SQLite keeps it."""
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (view,)).fetchone()
    return str(row[0]) if row else ""


def release_110(repository: Path) -> None:
    """Version 1.1.0 of the working copy: tagged, and the daily cash-flow view lists net_amount first."""
    system = repository / "catalog-info.yaml"
    system.write_text(system.read_text().replace("    version: 1.0.0\n", "    version: 1.1.0\n", 1)
                      .replace("    tags: []\n", "    tags: [treasury]\n", 1))
    port = repository / "components" / "daily-cashflow" / "catalog-info.yaml"
    text = port.read_text()
    net_amount = "        - name: net_amount\n          dataType: DECIMAL\n"
    port.write_text(text.replace(net_amount, "").replace("      schema:\n", "      schema:\n" + net_amount, 1))


def deploy_two_versions(meshbot: Meshbot, tmp_path: Path, config: str) -> tuple[str, str]:
    """Deploy 1.0.0, then 1.1.0, of a copy of the example; their deployment ids."""
    repository = tmp_path / "cashflow"
    shutil.copytree(ROOT / EXAMPLE, repository)
    ids = []
    for edit in (None, release_110):
        if edit:
            edit(repository)
        deployed = meshbot("deploy", str(repository), "--config", config, "--workers", "2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        ids.append(deployed.stdout.splitlines()[-1].removeprefix("deployment "))
    return ids[0], ids[1]


def test_rollback_restores_the_previous_view_definition(meshbot: Meshbot, tmp_path: Path) -> None:
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        config = meshbot.config(adapters_config(adapter.url))
        first, second = deploy_two_versions(meshbot, tmp_path, config)
        assert view_sql(database) == VIEW_110

        rolled = meshbot("rollback", PRODUCT, "--env", "development", "--config", config, "--workers", "2")
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert view_sql(database) == VIEW_100
        lines = rolled.stdout.splitlines()
        assert any(line.startswith("governance: ") and "against the deployed 1.1.0" in line for line in lines)
        assert (f"deploy of {PRODUCT} 1.0.0 in development (rollback from 1.1.0: the descriptor of deployment "
                f"{first}): deployment ") in rolled.stdout
        assert lines[-2].startswith("DEPLOYED")
        rollback_id = lines[-1].removeprefix("deployment ")

        status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
        assert (status["status"], status["version"], status["deployment"]["id"]) == ("DEPLOYED", "1.0.0", rollback_id)
        assert status["deployment"]["startedBy"].startswith("rollback to 1.0.0 by ")
        assert status["deployment"]["startedBy"].endswith(" (cli)")

        again = meshbot("rollback", PRODUCT, "--env", "development", "--to", "v1.0.0", "--config", config)
        assert again.returncode == 1, again.stdout + again.stderr
        assert again.stderr == (f"meshbot: cannot roll back {PRODUCT} in development: version 1.0.0 is already "
                                f"deployed in development (deployment {rollback_id})\n")
        unknown = meshbot("rollback", PRODUCT, "--env", "development", "--to", "1.5.0", "--config", config)
        assert unknown.returncode == 1, unknown.stdout + unknown.stderr
        assert "version 1.5.0 is not among the successful deployments kept in the history of development (kept: " \
               "1.0.0, 1.1.0;" in unknown.stderr

        forward = meshbot("rollback", PRODUCT, "--env", "development", "--to", "1.1.0", "--config", config,
                          "--format", "json", "--workers", "1")
        assert forward.returncode == 0, forward.stdout + forward.stderr
        document = json.loads(forward.stdout)
        assert (document["state"], document["operation"]) == ("DEPLOYED", "deploy")
        assert view_sql(database) == VIEW_110
    status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
    assert (status["version"], status["deployment"]["id"]) == ("1.1.0", document["id"])
    assert document["id"] not in (first, second, rollback_id)


def test_a_policy_added_since_blocks_the_old_version_and_is_named(meshbot: Meshbot, tmp_path: Path) -> None:
    database = tmp_path / "adapter.db"
    with running_adapter(database) as adapter:
        first, second = deploy_two_versions(meshbot, tmp_path, meshbot.config(adapters_config(adapter.url)))
        policies = tmp_path / "governance"
        policies.mkdir()
        (policies / "tagged.yaml").write_text(
            "id: tagged\ndescription: a data product has at least one tag\ntarget: dataproduct\n"
            "severity: error\nstatus: enabled\nschema:\n  type: object\n  required: [tags]\n"
            "  properties:\n    tags: {type: array, minItems: 1}\n")
        config = meshbot.config(adapters_config(adapter.url, extra="policies: [governance]\n"), name="later.yaml")
        refused = meshbot("rollback", PRODUCT, "--env", "development", "--config", config)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "tagged" in refused.stdout and "Result: BLOCKED" in refused.stdout
        assert refused.stderr == (f"meshbot: nothing was rolled back: version 1.0.0 (deployment {first}) no longer "
                                  "passes governance: blocked by tagged\n")
        assert view_sql(database) == VIEW_110  # nothing was deployed
    status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
    assert (status["version"], status["deployment"]["id"]) == ("1.1.0", second)


def test_nothing_to_roll_back_and_input_errors(meshbot: Meshbot) -> None:
    config = meshbot.config(adapters_config("http://127.0.0.1:9/x", extra="environments: [development, qa]\n"))
    nothing = meshbot("rollback", PRODUCT, "--env", "qa", "--config", config)
    assert (nothing.returncode, nothing.stdout) == (1, "")
    assert nothing.stderr == (f"meshbot: cannot roll back {PRODUCT} in qa: nothing deployed in qa: there is nothing "
                              "to roll back\n")
    unknown = meshbot("rollback", PRODUCT, "--env", "staging", "--config", config)
    assert unknown.returncode == 2
    assert unknown.stderr == ("meshbot: environment 'staging' is not in the server configuration (known: development, "
                              "qa)\n")
    not_an_id = meshbot("rollback", "examples/finance-cashflow", "--config", config)
    assert not_an_id.returncode == 2
    assert "is not a data product id (urn:...)" in not_an_id.stderr
