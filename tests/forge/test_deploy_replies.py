"""The replies to /deploy and /undeploy as rendered from templates/comments/deploy_command.md.j2 (golden file).

After an intended change of wording, regenerate with `MESHBOT_REGENERATE_GOLDEN=1 ./dev test
tests/forge/test_deploy_replies.py` and read the diff before committing it.
"""

from __future__ import annotations

from bot.descriptor.model import Descriptor
from bot.engine.deployment import DeploymentState
from bot.engine.reconcile import Reconciliation, Scope
from bot.engine.store import PlannedTask
from bot.forge.merge_request_deploy import _reply, dry_run_reply, progress_reply
from tests.engine.test_store import LEDGER, PORT, make_deployment
from tests.forge.test_review_comments import assert_golden

DP = "urn:dmb:dp:finance:cashflow:1"


def test_every_reply_as_rendered():
    # A dry run whose every task is unchanged (nothing asked of an adapter), one removal and one kept component.
    pruned_descriptor = Descriptor(data={"id": DP, "components": [{"id": LEDGER, "kind": "storage"}]},
                                   environment="production")
    planned = Reconciliation(provision=[], depends_on={}, unchanged=[LEDGER], remove=[f"{PORT}-old"],
                             kept={f"{PORT}-older": Scope(prune="confirm").kept_reason("production")})
    reconciled = make_deployment("d4", report_to={"command": "/deploy"})
    reconciled.reconciliation = {**planned.as_json(), "provision": [LEDGER]}
    reconciled.tasks.append(PlannedTask(id=f"{PORT}-old", kind="outputport", depends_on=[LEDGER], removal=True))
    removal = {"id": f"{PORT}-old", "kind": "outputport", "state": "COMPLETED", "message": "view dropped"}
    deployment = make_deployment("d1", report_to={"command": "/deploy"})
    deployment.state, deployment.message = DeploymentState.CORRUPT, "1 failed: boom | <b>"
    tasks = [{"id": LEDGER, "kind": "storage", "state": "COMPLETED", "message": "tables made",
              "startedAt": "2026-12-05T10:00:00Z", "finishedAt": "2026-12-05T10:00:01.5Z"},
             {"id": PORT, "kind": "outputport", "state": "FAILED", "message": "view *failed*\nsecond line"}]
    replies = [
        _reply("cannot_assemble", word="/deploy", environment="qa", sha="0123abcd",
               errors=["catalog-info.yaml:3:1: malformed YAML", "a_b: <x>"]),
        _reply("cannot_read", word="/undeploy", environment="qa", error="HTTP 502 Bad Gateway"),
        _reply("governance_blocks", strip=False, word="/deploy", environment="production", sha="0123abcd",
               report="### the governance report\n"),
        _reply("no_adapter", word="/deploy", environment="qa", errors=["no adapter for `urn:x`"]),
        _reply("started", word="/deploy", data_product=DP, version="1.0.0", sha="0123abcd", environment="qa",
               deployment="d1", queued=_reply("queued", ahead=0, data_product=DP, environment="qa")),
        _reply("nothing_deployed", data_product=DP, environment="production"),
        _reply("undeploy_no_adapter", environment="qa", deployed_by="deployment `d0`", errors=["no adapter"]),
        _reply("undeploy_started", data_product=DP, version="1.0.0", environment="qa", deployed_by="deployment `d0`",
               deployment="d2", queued=_reply("queued", ahead=2, data_product=DP, environment="qa"), remove_data=True),
        _reply("dry_run", data_product=DP, sha="0123abcd", environment="qa",
               rows=[{"stage": 1, "task": LEDGER, "kind": "storage", "action": "provision", "verdict": "valid"},
                     {"stage": 2, "task": PORT, "kind": "outputport", "action": "provision",
                      "verdict": "not valid: no such table"}]),
        dry_run_reply(pruned_descriptor, {}, "0123abcd", planned),
        _reply("unknown_components", word="/deploy", environment="qa",
               problems=["'ledgr' is not a component of urn:x (did you mean 'ledger'?)"]),
        progress_reply(deployment, tasks, "https://meshbot.example.com/status/x?env=qa"),
        progress_reply(reconciled, tasks[:1] + [removal], None),
        progress_reply(make_deployment("d3", report_to={"command": "/undeploy"}), tasks[:1], None),
    ]
    assert_golden("deploy-replies.md", "\n\n=====\n\n".join(replies) + "\n")
