"""Request bodies of the Tech Adapter API, built from an assembled descriptor."""

from __future__ import annotations

from typing import Any

from adapters.model import DESCRIPTOR_KIND_COMPONENT, DESCRIPTOR_KIND_DATA_PRODUCT
from bot.yamldump import dump_yaml


def data_product_request(descriptor: dict[str, Any], remove_data: bool = False) -> dict[str, Any]:
    """A DATAPRODUCT_DESCRIPTOR request: the whole descriptor as YAML text."""
    return {
        "descriptorKind": DESCRIPTOR_KIND_DATA_PRODUCT,
        "descriptor": dump_yaml(descriptor),
        "removeData": remove_data,
    }


def component_request(descriptor: dict[str, Any], component_id: str, remove_data: bool = False) -> dict[str, Any]:
    """A COMPONENT_DESCRIPTOR request: the data product and the id of the component to act on."""
    return component_request_from_yaml(dump_yaml(descriptor), component_id, remove_data)


def component_request_from_yaml(descriptor_yaml: str, component_id: str, remove_data: bool = False) -> dict[str, Any]:
    """The same request from the data product already written as YAML: one dump serves every component."""
    nested = "".join(f"  {line}" if line.strip() else line for line in descriptor_yaml.splitlines(keepends=True))
    return {
        "descriptorKind": DESCRIPTOR_KIND_COMPONENT,
        "descriptor": "dataProduct:\n" + nested + dump_yaml({"componentIdToProvision": component_id}),
        "removeData": remove_data,
    }


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
