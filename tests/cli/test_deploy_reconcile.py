"""`meshbot deploy` reconciles with what is deployed: removals per prune mode, --prune, --component (subprocesses,
embedded Redis, local workers, the reference SQLite adapter over HTTP)."""

from __future__ import annotations

import json
import shutil

from tests.cli.test_deploy import EXAMPLE, PRODUCT, ROOT, adapters_config, sqlite_objects
from tests.servers.reference_adapter import running_adapter

ARCHIVE = "urn:dmb:cmp:finance:cashflow:1:archive"
ARCHIVE_CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: finance.cashflow.1.archive
spec:
  type: storage
  lifecycle: experimental
  owner: group:finance-data
  system: system:finance.cashflow.1
  mesh:
    version: 1.0.0
    infrastructureTemplateId: urn:dmb:itm:sqlite-storage-provisioner:0
    useCaseTemplateId: urn:dmb:utm:sqlite-storage-template:0.0.0
    dependsOn: []
    specific:
      tables:
        - tableName: archived_transactions
          schema:
            - name: transaction_id
              dataType: TEXT
"""


def test_a_removed_component_is_unprovisioned_in_auto_and_kept_until_prune_in_confirm(meshbot, tmp_path):
    repository = tmp_path / "repository"
    shutil.copytree(ROOT / EXAMPLE, repository)
    (repository / "components" / "archive").mkdir()
    (repository / "components" / "archive" / "catalog-info.yaml").write_text(ARCHIVE_CATALOG)
    with running_adapter(tmp_path / "adapter.db") as adapter:
        config = meshbot.config(adapters_config(adapter.url, extra="environments: {development: , production: }\n"))
        for environment in ("development", "production"):
            first = meshbot("deploy", str(repository), "--env", environment, "--config", config, "--workers", "2")
            assert first.returncode == 0, first.stdout + first.stderr
            assert "plan: 4 to provision" in first.stdout.splitlines()
        assert "table archived_transactions" in sqlite_objects(adapter.database)
        shutil.rmtree(repository / "components" / "archive")  # a storage: removing it breaks no consumer

        auto = meshbot("deploy", str(repository), "--config", config, "--workers", "2")
        assert auto.returncode == 0, auto.stdout + auto.stderr
        lines = auto.stdout.splitlines()
        assert "plan: 3 to provision, 1 to remove" in lines
        assert lines[-2] == "DEPLOYED: 3 completed, 1 removed"
        status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
        assert ARCHIVE not in {component["id"] for component in status["components"]}

        # production is production-like: prune is `confirm`, so the view stays and the plan says so
        kept = meshbot("deploy", str(repository), "--env", "production", "--config", config, "--workers", "2")
        assert kept.returncode == 0, kept.stdout + kept.stderr
        assert "plan: 3 to provision, 1 kept" in kept.stdout.splitlines()
        assert f"  {ARCHIVE}: not in the repository any more; kept until a deploy with --prune, as prune is confirm " \
               "in production" in kept.stdout.splitlines()
        status = json.loads(meshbot("status", PRODUCT, "--env", "production", "--format", "json").stdout)
        listed = {component["id"]: component for component in status["components"]}
        assert listed[ARCHIVE]["status"] == "DEPLOYED" and "--prune" in listed[ARCHIVE]["message"]

        pruned = meshbot("deploy", str(repository), "--env", "production", "--prune", "--config", config,
                         "--workers", "2")
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        assert pruned.stdout.splitlines()[-2] == "DEPLOYED: 3 completed, 1 removed"
        # removeData is never implied: the reference adapter keeps a storage's tables when it unprovisions it
        assert "table archived_transactions" in sqlite_objects(adapter.database)
        status = json.loads(meshbot("status", PRODUCT, "--env", "production", "--format", "json").stdout)
        assert ARCHIVE not in {component["id"] for component in status["components"]}


def test_component_deploys_one_component_and_refuses_an_unknown_name(meshbot, tmp_path):
    with running_adapter(tmp_path / "adapter.db") as adapter:
        config = meshbot.config(adapters_config(adapter.url))
        unknown = meshbot("deploy", EXAMPLE, "--component", "ledgr", "--config", config)
        assert unknown.returncode == 2
        assert unknown.stderr == (f"meshbot: --component 'ledgr' is not a component of {PRODUCT}; did you mean "
                                  "'ledger'?\n")
        both = meshbot("deploy", EXAMPLE, "--component", "ledger", "--prune", "--config", config)
        assert both.returncode == 2 and "do not go together" in both.stderr
        partial = meshbot("deploy", EXAMPLE, "--component", "ledger", "--config", config, "--workers", "1")
        assert partial.returncode == 0, partial.stdout + partial.stderr
        assert "plan: 1 to provision, 2 left as they are" in partial.stdout.splitlines()
        assert partial.stdout.splitlines()[-2] == (
            "PARTIALLY_DEPLOYED: partial deploy of urn:dmb:cmp:finance:cashflow:1:ledger: 1 completed, "
            "2 left as they are")
        status = json.loads(meshbot("status", PRODUCT, "--env", "development", "--format", "json").stdout)
        assert status["status"] == "PARTIALLY_DEPLOYED"
        assert sqlite_objects(adapter.database) == {"table transactions", "table daily_cashflow"}
