"""Request bodies, checked: ProvisioningRequest, UpdateAclRequest and ReverseProvisioningRequest.

Anything malformed raises BadRequest (answered 400 RequestValidationError, or `valid: false` by validate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from adapters.model import DESCRIPTOR_KIND_COMPONENT, DESCRIPTOR_KIND_DATA_PRODUCT
from adapters.reference.answers import BadRequest
from bot.descriptor.errors import InputErrors
from bot.descriptor.yamlsafe import load_single

DESCRIPTOR_KINDS = (DESCRIPTOR_KIND_DATA_PRODUCT, DESCRIPTOR_KIND_COMPONENT)
_SEND = "send a JSON object {descriptorKind, descriptor (YAML text), removeData}"


@dataclass(frozen=True, slots=True)
class ProvisioningRequest:
    """What to act on: the whole data product, or one of its components."""

    kind: str
    data_product: dict[str, Any]
    component_id: str | None
    remove_data: bool


@dataclass(frozen=True, slots=True)
class AclRequest:
    """Who may read a component (refs), and which component (from provisionInfo.request)."""

    refs: tuple[str, ...]
    component_id: str


@dataclass(frozen=True, slots=True)
class ReverseRequest:
    """A reverse provisioning request."""

    use_case_template_id: str
    environment: str
    params: dict[str, Any] = field(default_factory=dict)
    catalog_info: dict[str, Any] = field(default_factory=dict)


def provisioning_request(body: Any) -> ProvisioningRequest:
    """The checked ProvisioningRequest, its descriptor parsed as untrusted YAML."""
    check_envelope(body)
    kind, remove_data = body["descriptorKind"], body.get("removeData", False)
    descriptor = _yaml_mapping(body["descriptor"], "descriptor")
    if kind == DESCRIPTOR_KIND_DATA_PRODUCT:
        return ProvisioningRequest(kind, descriptor, None, remove_data)
    data_product = descriptor.get("dataProduct")
    component_id = descriptor.get("componentIdToProvision")
    problems = []
    if not isinstance(data_product, dict):
        problems.append("descriptor.dataProduct: a COMPONENT_DESCRIPTOR carries the data product descriptor here")
    if not isinstance(component_id, str) or not component_id:
        problems.append("descriptor.componentIdToProvision: a COMPONENT_DESCRIPTOR names the component to act on")
    if problems or not isinstance(data_product, dict) or not isinstance(component_id, str):
        raise BadRequest("the component descriptor is incomplete", problems, "descriptor",
                         ["the descriptor of a COMPONENT_DESCRIPTOR is {dataProduct: <descriptor>, "
                          "componentIdToProvision: <component id>}"])
    return ProvisioningRequest(kind, data_product, component_id, remove_data)


def check_envelope(body: Any) -> None:
    """BadRequest unless body is {descriptorKind, descriptor: text, removeData?: boolean}."""
    if not isinstance(body, dict):
        raise BadRequest("the request body is not a JSON object", ["the request body must be a JSON object"],
                         solutions=[_SEND])
    kind = body.get("descriptorKind")
    if kind not in DESCRIPTOR_KINDS:
        problem = ("descriptorKind is missing" if kind is None
                   else f"descriptorKind {kind!r} is not supported; use one of {', '.join(DESCRIPTOR_KINDS)}")
        raise BadRequest(problem, [problem], "descriptorKind", [_SEND])
    remove_data = body.get("removeData", False)
    if not isinstance(remove_data, bool):
        problem = f"removeData must be true or false, not {remove_data!r}"
        raise BadRequest(problem, [problem], "removeData", [_SEND])
    text = body.get("descriptor")
    if not isinstance(text, str):
        problem = "descriptor must be the descriptor as YAML text"
        raise BadRequest(problem, [problem], "descriptor", [_SEND])


def acl_request(body: Any) -> AclRequest:
    """The checked UpdateAclRequest; the component comes from the request it was provisioned with."""
    solution = "send {refs: [\"user:alice\", \"group:finance\"], provisionInfo: {request, result}}"
    if not isinstance(body, dict):
        raise BadRequest("the request body is not a JSON object", ["the request body must be a JSON object"],
                         solutions=[solution])
    refs = body.get("refs")
    if not isinstance(refs, list) or not all(isinstance(ref, str) and ref.strip() for ref in refs):
        problem = "refs must be a list of identities (non-empty strings such as user:alice or group:finance)"
        raise BadRequest(problem, [problem], "refs", [solution])
    info = body.get("provisionInfo")
    if not isinstance(info, dict) or not isinstance(info.get("request"), str) or not isinstance(
        info.get("result"), str
    ):
        problem = "provisionInfo must be {request, result}, both strings"
        raise BadRequest(problem, [problem], "provisionInfo", [solution])
    component_id = _component_of(info["request"])
    if component_id is None:
        problem = ("provisionInfo.request must be the COMPONENT_DESCRIPTOR the component was provisioned with "
                   "(JSON or YAML naming componentIdToProvision)")
        raise BadRequest(problem, [problem], "provisionInfo.request", [solution])
    return AclRequest(tuple(dict.fromkeys(ref.strip() for ref in refs)), component_id)


def reverse_request(body: Any) -> ReverseRequest:
    """The checked ReverseProvisioningRequest."""
    solution = "send {useCaseTemplateId, environment, params: {table | view}, catalogInfo}"
    if not isinstance(body, dict):
        raise BadRequest("the request body is not a JSON object", ["the request body must be a JSON object"],
                         solutions=[solution])
    for key in ("useCaseTemplateId", "environment"):
        if not isinstance(body.get(key), str) or not body[key]:
            problem = f"{key} must be a non-empty string"
            raise BadRequest(problem, [problem], key, [solution])
    for key in ("params", "catalogInfo"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            problem = f"{key} must be an object"
            raise BadRequest(problem, [problem], key, [solution])
    return ReverseRequest(body["useCaseTemplateId"], body["environment"], body.get("params") or {},
                          body.get("catalogInfo") or {})


def _yaml_mapping(text: str, name: str) -> dict[str, Any]:
    try:
        document = load_single(text, name)
    except InputErrors as invalid:
        problems = [str(error) for error in invalid.errors]
        raise BadRequest(f"the {name} is not valid YAML: {problems[0]}", problems, name,
                         ["send the descriptor as meshbot assembles it (`meshbot descriptor PATH`)"]) from None
    if document is None or not isinstance(document.value, dict):
        problem = f"the {name} must be a YAML mapping"
        raise BadRequest(problem, [problem], name, ["send the descriptor as meshbot assembles it"])
    return document.value


def _component_of(request: str) -> str | None:
    """componentIdToProvision, from a COMPONENT_DESCRIPTOR or from a ProvisioningRequest that holds one."""
    try:
        document = load_single(request, "provisionInfo.request")  # JSON is YAML
    except InputErrors:
        return None
    value = document.value if document else None
    if isinstance(value, dict) and isinstance(value.get("descriptor"), str):
        try:
            inner = load_single(value["descriptor"], "provisionInfo.request.descriptor")
        except InputErrors:
            return None
        value = inner.value if inner else None
    component = value.get("componentIdToProvision") if isinstance(value, dict) else None
    return component if isinstance(component, str) and component else None


def json_body(raw: bytes) -> Any:
    """The parsed JSON body, or BadRequest."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the request body is not JSON", ["the request body must be JSON"],
                         solutions=["send Content-Type: application/json and a JSON object"]) from None
