"""What a merge request shows for each answer of a scaffold-shaped tech adapter (golden file adapter-answers.md):
the `/deploy --dry-run` reply, the review's adapter section, and the deploy reply once the engine ended the
deployment REFUSED or FAILED at its validation.

After an intended change of wording, regenerate with `MESHBOT_REGENERATE_GOLDEN=1` and read the diff.
"""

from __future__ import annotations

from adapters.error_paths import LocatedError, locate
from adapters.registry import AdapterTarget
from bot.config import AdapterSettings
from bot.descriptor.assembly import assemble
from bot.engine.runner import validation_end
from bot.forge.adapter_validation import validate_with_adapters
from bot.forge.merge_request_deploy import dry_run_reply, progress_reply
from policies.report import markdown_environment
from tests.adapters.test_client_answers import LEDGER, SCENARIOS, VIEW, reader, storage_answer
from tests.engine.test_store import make_deployment
from tests.forge.test_review_comments import assert_golden
from tests.servers.scaffold_adapter import scaffold_adapter

STORAGE_TEMPLATE_ID = "urn:dmb:itm:sqlite-storage-provisioner:0"
OUTPUT_PORT_TEMPLATE_ID = "urn:dmb:itm:sqlite-outputport-provisioner:0"


def test_every_scaffold_answer_as_a_merge_request_shows_it():
    descriptor = assemble(reader(), "development")
    sections = []
    with scaffold_adapter() as storage, scaffold_adapter() as view:
        targets = {LEDGER: AdapterTarget(storage.url, 10.0), VIEW: AdapterTarget(view.url, 10.0)}
        settings = [AdapterSettings(STORAGE_TEMPLATE_ID, storage.url, timeout=10.0),
                    AdapterSettings(OUTPUT_PORT_TEMPLATE_ID, view.url, timeout=10.0)]
        for scenario, answer in SCENARIOS.items():
            storage.answer("/v1/validate", storage_answer(scenario))
            view.answer("/v1/validate", answer)
            dry_run = dry_run_reply(descriptor, targets, "0123abcd")
            review = markdown_environment().get_template("adapter_validation.md.j2").render(
                environment="development", verdicts=validate_with_adapters(descriptor, settings))
            sections.append(f"## {scenario}: /deploy --dry-run\n\n{dry_run}\n\n## {scenario}: review\n\n{review}")
        text = "\n=====\n\n".join(sections).replace(view.url, "http://127.0.0.1:PORT/datamesh.specificprovisioner")
    assert_golden("adapter-answers.md", text)


def test_the_deploy_reply_after_a_refusal_and_after_an_adapter_failure():
    descriptor = assemble(reader(), "development")
    errors = ["Failed to parse the descriptor. Details: \n{'type': 'list_type', 'loc': ('components', 1, "
              "'semanticLinking'), 'msg': 'Input should be a valid list'}",
              "cannot create table orders:\nsqlite3.OperationalError('table orders already exists')"]
    refusals = locate(descriptor, LEDGER, errors, [LEDGER, VIEW])
    replies = []
    for refused, failures in ((refusals, []), ([], [LocatedError(VIEW, "the tech adapter reported a system error: "
                                                                      "cannot connect to the warehouse")])):
        deployment = make_deployment("d7", report_to={"command": "/deploy"})
        deployment.state, deployment.message = validation_end(refused, failures)
        replies.append(progress_reply(deployment, [{"id": LEDGER, "kind": "storage", "state": "PENDING"},
                                                   {"id": VIEW, "kind": "outputport", "state": "PENDING"}], None))
    assert_golden("adapter-answers-deploy.md", "\n\n=====\n\n".join(replies) + "\n")
