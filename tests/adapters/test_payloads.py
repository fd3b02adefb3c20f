"""Request bodies: the shared-part shortcuts write exactly what the plain requests would."""

from __future__ import annotations

import json

import pytest

from adapters.payloads import ComponentRequests, component_id_yaml, component_request_from_nested, nest_descriptor_yaml
from bot.descriptor.yamldump import dump_yaml
from bot.descriptor.yamlsafe import load_single

IDS = [
    "urn:dmb:cmp:finance:cashflow:1:ledger",
    "urn:dmb:cmp:a.b:c-d:10:e_f",
    "urn:dmb:cmp:x:y:1:",  # ends with a colon: not plain
    "urn:dmb:cmp:x:y:1:a b",  # a space
    "urn:dmb:cmp:x:y:1:a #b",
    "urn:dmb:cmp:x:y:1:\"quoted\"",
    "urn:dmb:cmp:x:y:1:caf\u00e9",
    "no",
    "0755",
    "true",
    "1:20",
    "- dash",
    "line\nbreak",
]
DESCRIPTOR = {"id": "urn:dmb:dp:a:b:1", "description": "two\nlines\n", "flag": "no", "n": 3,
              "components": [{"id": IDS[0], "specific": {"q": "x"}}]}


@pytest.mark.parametrize("component_id", IDS)
def test_the_component_line_is_what_the_yaml_writer_writes(component_id: str) -> None:
    assert component_id_yaml(component_id) == dump_yaml({"componentIdToProvision": component_id})


@pytest.mark.parametrize("remove_data", [False, True])
@pytest.mark.parametrize("component_id", IDS)
def test_an_encoded_request_is_the_plain_request_as_json(component_id: str, remove_data: bool) -> None:
    descriptor_yaml = dump_yaml(DESCRIPTOR)
    plain = component_request_from_nested(nest_descriptor_yaml(descriptor_yaml), component_id, remove_data)
    body = ComponentRequests(descriptor_yaml, remove_data).body(component_id)
    assert body.data == json.dumps(plain).encode()
    sent = json.loads(body.data)
    parsed = load_single(sent["descriptor"], "request")
    assert parsed is not None
    assert parsed.value == {"dataProduct": DESCRIPTOR, "componentIdToProvision": component_id}
    assert sent["removeData"] is remove_data
