"""What meshbot makes of each answer a tech adapter built on the Witboost Python scaffold gives (FastAPI shapes).

The scenarios here (a small data product, a storage and an output port adapter) are shared with the CLI tests
(tests/cli/test_validate.py) and the merge request ones (tests/forge/test_adapter_answers.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.client import TechAdapterClient
from adapters.model import Outcome, ValidationOutcome
from adapters.payloads import component_request
from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
from bot.descriptor.files import MemoryReader
from tests.servers.scaffold_adapter import (
    Answer,
    bad_request,
    not_found,
    not_valid,
    parse_failure,
    plain_500,
    scaffold_adapter,
    system_error,
    unprocessable,
    valid,
)

PRODUCT = "urn:dmb:dp:sales:orders:1"
LEDGER = "urn:dmb:cmp:sales:orders:1:ledger"
VIEW = "urn:dmb:cmp:sales:orders:1:orders-view"
FILES = {
    "catalog-info.yaml": """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: sales.orders.1
  description: Orders and their daily totals
spec:
  type: dataproduct
  owner: group:sales
  domain: sales
  mesh:
    version: 1.0.0
    dataProductOwner: user:jane
""",
    "components/ledger/catalog-info.yaml": f"""\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: sales.orders.1.ledger
spec:
  type: storage
  system: sales.orders.1
  mesh:
    version: 1.0.0
    infrastructureTemplateId: {STORAGE_TEMPLATE_ID}
    specific:
      tables:
        - tableName: orders
          schema:
            - name: order_id
              dataType: TEXT
""",
    "components/orders-view/catalog-info.yaml": f"""\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: sales.orders.1.orders-view
spec:
  type: outputport
  system: sales.orders.1
  mesh:
    version: 1.0.0
    infrastructureTemplateId: {OUTPUT_PORT_TEMPLATE_ID}
    dependsOn: [{LEDGER}]
    semanticLinking: {{}}
    dataContract:
      schema:
        - name: order_id
    specific:
      viewName: Orders_View
""",
}
# What the output port's adapter answers in each scenario (the storage adapter says valid, except in valid-false,
# where its scaffold parser names the output port's fields and adds a multi-line text of its own).
SCENARIOS: dict[str, Answer] = {
    "valid-false": parse_failure(
        (("components", 1, "semanticLinking"), "Input should be a valid list", "list_type"),
        (("components", 1, "dataContract", "schema", 0, "dataType"), "Field required", "missing")),
    "400": bad_request("components[1].specific.viewName: must be lower case", "owner group:sales is unknown"),
    "422": unprocessable((("body", "descriptor"), "Field required", "missing")),
    "500-json": system_error("cannot connect to the warehouse"),
    "500-text": plain_500(),
    "404": not_found(),
}
STORAGE_REFUSAL = not_valid("cannot create table orders:\nsqlite3.OperationalError('table orders already exists')",
                            "components[1].dependsOn[0]: the view would read a table this adapter cannot create")


def storage_answer(scenario: str) -> Answer:
    """What the storage adapter answers in a scenario."""
    return STORAGE_REFUSAL if scenario == "valid-false" else valid()


def write_product(folder: Path) -> Path:
    """The small data product's files under folder."""
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def reader() -> MemoryReader:
    """The small data product in memory."""
    return MemoryReader(dict(FILES))


def config_text(storage_url: str, view_url: str) -> str:
    """A server configuration naming the two adapters."""
    return (f"adapters:\n  - infrastructureTemplateId: {STORAGE_TEMPLATE_ID}\n    url: {storage_url}\n    timeout: 10\n"
            f"  - infrastructureTemplateId: {OUTPUT_PORT_TEMPLATE_ID}\n    url: {view_url}\n    timeout: 10\n")


REQUEST = component_request({"id": PRODUCT, "components": [{"id": VIEW}]}, VIEW)
EXPECTED = {
    "valid-false": ValidationOutcome(
        valid=False, errors=["Failed to parse the descriptor. Details: \n"
                             "{'type': 'list_type', 'loc': ('components', 1, 'semanticLinking'), "
                             "'msg': 'Input should be a valid list'} , \n"
                             "{'type': 'missing', 'loc': ('components', 1, 'dataContract', 'schema', 0, 'dataType'), "
                             "'msg': 'Field required'}"],
        message="Failed to parse the descriptor. Details: \n"
                "{'type': 'list_type', 'loc': ('components', 1, 'semanticLinking'), "
                "'msg': 'Input should be a valid list'} , \n"
                "{'type': 'missing', 'loc': ('components', 1, 'dataContract', 'schema', 0, 'dataType'), "
                "'msg': 'Field required'}"),
    "400": ValidationOutcome(valid=False, errors=["components[1].specific.viewName: must be lower case",
                                                  "owner group:sales is unknown"],
                             message="components[1].specific.viewName: must be lower case; owner group:sales is "
                                     "unknown", http_status=400),
    "422": ValidationOutcome(valid=False, errors=["field: body -> descriptor: Field required"],
                             message="the tech adapter rejected meshbot's request itself (/v1/validate answered HTTP "
                                     "422: meshbot and the adapter disagree on the Tech Adapter API): body -> "
                                     "descriptor: Field required", failed=True, http_status=422),
    "500-json": ValidationOutcome(valid=False, message="the tech adapter reported a system error: cannot connect to "
                                                       "the warehouse", failed=True, http_status=500),
    "500-text": ValidationOutcome(valid=False, message="/v1/validate answered HTTP 500: 'Internal Server Error'",
                                  failed=True, http_status=500),
    "404": ValidationOutcome(valid=False, message="<URL>/v1/validate answered HTTP 404 (the adapter does not serve "
                                                  "this path): '{\"detail\": \"Not Found\"}'", failed=True,
                             http_status=404),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scaffold_answer_is_a_verdict_or_a_failure_in_words(scenario):
    with scaffold_adapter() as adapter:
        adapter.answer("/v1/validate", SCENARIOS[scenario])
        outcome = TechAdapterClient(adapter.url, timeout=10, backoff=0.0).validate(REQUEST)
    outcome.message = outcome.message.replace(adapter.url, "<URL>")
    assert outcome == EXPECTED[scenario]
    assert outcome.refused is (scenario in ("valid-false", "400"))
    assert outcome.failed is (scenario not in ("valid-false", "400"))


def test_a_404_hints_at_the_usual_prefix_only_when_the_url_lacks_it():
    with scaffold_adapter() as adapter:
        outcome = TechAdapterClient(adapter.root, timeout=10).validate(REQUEST)
    assert outcome.message == (f"{adapter.root}/v1/validate answered HTTP 404 (is the URL right? adapters usually "
                               "serve under /datamesh.specificprovisioner): '{\"detail\": \"Not Found\"}'")


def test_a_request_the_fastapi_model_rejects_names_the_fields():
    with scaffold_adapter() as adapter:
        result = TechAdapterClient(adapter.url, timeout=10).provision({"descriptorKind": "COMPONENT_DESCRIPTOR"})
    assert (result.outcome, result.http_status) == (Outcome.FAILED, 422)
    assert result.message == ("the tech adapter rejected meshbot's request itself (/v1/provision answered HTTP 422: "
                              "meshbot and the adapter disagree on the Tech Adapter API): body -> descriptor: Field "
                              "required")
    assert result.details == ["field: body -> descriptor: Field required"]


def test_reverse_provisioning_on_a_scaffold_without_it_says_it_is_not_implemented():
    with scaffold_adapter() as adapter:
        result = TechAdapterClient(adapter.url, timeout=10).reverse_provision({"useCaseTemplateId": "x"})
    assert result.unsupported and result.outcome is Outcome.FAILED
    assert result.message == (f"the tech adapter at {adapter.url} does not implement reverse provisioning "
                              "(/v1/reverse-provisioning answered HTTP 404)")
