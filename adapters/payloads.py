"""Request bodies of the Tech Adapter API, built from an assembled descriptor."""

from __future__ import annotations

import json
import re
from typing import Any

from adapters.descriptor_yaml import adapter_yaml
from adapters.model import DESCRIPTOR_KIND_COMPONENT, DESCRIPTOR_KIND_DATA_PRODUCT, JsonBody
from bot.descriptor.yamldump import dump_yaml


def data_product_request(descriptor: dict[str, Any], remove_data: bool = False) -> dict[str, Any]:
    """A DATAPRODUCT_DESCRIPTOR request: the whole descriptor as YAML text."""
    return {
        "descriptorKind": DESCRIPTOR_KIND_DATA_PRODUCT,
        "descriptor": adapter_yaml(descriptor),
        "removeData": remove_data,
    }


def component_request(descriptor: dict[str, Any], component_id: str, remove_data: bool = False) -> dict[str, Any]:
    """A COMPONENT_DESCRIPTOR request: the data product and the id of the component to act on."""
    return component_request_from_yaml(adapter_yaml(descriptor), component_id, remove_data)


def component_request_from_yaml(descriptor_yaml: str, component_id: str, remove_data: bool = False) -> dict[str, Any]:
    """The same request from the data product already written as YAML: one dump serves every component."""
    return component_request_from_nested(nest_descriptor_yaml(descriptor_yaml), component_id, remove_data)


def nest_descriptor_yaml(descriptor_yaml: str) -> str:
    """The data product's YAML indented under `dataProduct:`, the part every component request shares."""
    nested = "".join(f"  {line}" if line.strip() else line for line in descriptor_yaml.splitlines(keepends=True))
    return "dataProduct:\n" + nested


def component_request_from_nested(nested_yaml: str, component_id: str, remove_data: bool = False) -> dict[str, Any]:
    """A COMPONENT_DESCRIPTOR request from `nest_descriptor_yaml`'s output."""
    return {
        "descriptorKind": DESCRIPTOR_KIND_COMPONENT,
        "descriptor": nested_yaml + component_id_yaml(component_id),
        "removeData": remove_data,
    }


# URNs as meshbot derives them: ruamel.yaml writes them plain, so the line needs no YAML writer.
_PLAIN_URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9._:-]*[A-Za-z0-9._-]")


def component_id_yaml(component_id: str) -> str:
    """The `componentIdToProvision` line, exactly as dump_yaml writes it."""
    if _PLAIN_URN.fullmatch(component_id):
        return f"componentIdToProvision: {component_id}\n"
    return dump_yaml({"componentIdToProvision": component_id})


class ComponentRequests:
    """The COMPONENT_DESCRIPTOR requests of one deployment as JSON bodies; the shared part is encoded once.

    Each body is byte-for-byte `json.dumps(component_request_from_nested(...))`, which is what the
    client would send for the plain request.
    """

    def __init__(self, descriptor_yaml: str, remove_data: bool = False) -> None:
        encoded = json.dumps(nest_descriptor_yaml(descriptor_yaml))
        # Encoded to bytes once: each body is then one concatenation of bytes, not a text join and its encoding.
        kind = json.dumps(DESCRIPTOR_KIND_COMPONENT)
        self._head = f'{{"descriptorKind": {kind}, "descriptor": {encoded[:-1]}'.encode()
        self._tail = f', "removeData": {json.dumps(remove_data)}}}'.encode()

    def body(self, component_id: str) -> JsonBody:
        """The request for one component."""
        return JsonBody(b"".join((self._head, json.dumps(component_id_yaml(component_id))[1:].encode(), self._tail)))


def reverse_provisioning_request(
    use_case_template_id: str, environment: str, params: dict[str, Any], catalog_info: dict[str, Any]
) -> dict[str, Any]:
    """A reverse provisioning request for one component's catalog-info.yaml."""
    return {
        "useCaseTemplateId": use_case_template_id,
        "environment": environment,
        "params": params,
        "catalogInfo": catalog_info,
    }
