"""A strict reader of tech adapter requests, shaped like the models of the public Witboost Python scaffold.

A tech adapter built on that scaffold reads `descriptor` with `yaml.safe_load` and parses the data product
(`dataProduct` of a COMPONENT_DESCRIPTOR, the whole document of a DATAPRODUCT_DESCRIPTOR) into its
DataProduct model: required fields must be present and of their type, optional ones may be missing or null,
components are parsed by `kind` (outputport, storage, workload, observability) into their own models, and
unknown fields are allowed. This module checks the same with plain code and returns every problem as
`path: message`, so a test can show what such an adapter would refuse. Written for meshbot's tests after
the scaffold's field list (witboost-python-scaffold, tech-adapter/src/models/data_product_descriptor.py);
no code of it is used.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import yaml

DESCRIPTOR_KINDS = ("DATAPRODUCT_DESCRIPTOR", "COMPONENT_DESCRIPTOR", "DATAPRODUCT_DESCRIPTOR_WITH_RESULTS")
COMPONENT_KINDS = ("outputport", "workload", "storage", "observability")
# OpenMetadata data types the scaffold accepts for a column (compared in upper case).
OPENMETADATA_TYPES = frozenset((
    "NUMBER TINYINT SMALLINT INT BIGINT BYTEINT BYTES FLOAT DOUBLE DECIMAL NUMERIC TIMESTAMP TIMESTAMPZ TIME DATE "
    "DATETIME INTERVAL STRING MEDIUMTEXT TEXT CHAR LONG VARCHAR BOOLEAN BINARY VARBINARY ARRAY BLOB LONGBLOB "
    "MEDIUMBLOB MAP STRUCT UNION SET GEOGRAPHY ENUM JSON UUID VARIANT GEOMETRY POINT POLYGON BYTEA"
).split())
# Tag label enumerations (matched ignoring case).
TAG_SOURCES = ("Classification", "Glossary")
TAG_LABEL_TYPES = ("Manual", "Propagated", "Automated", "Derived")
TAG_STATES = ("Suggested", "Confirmed")
CONNECTION_TYPES = ("HOUSEKEEPING", "DATAPIPELINE")

Check = Callable[[Any, str, list[str]], None]


# ---------------------------------------------------------------------------------------------------
# Field types


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def string(value: Any, path: str, errors: list[str]) -> None:
    """A str (pydantic does not turn numbers or booleans into text)."""
    if not isinstance(value, str):
        errors.append(f"{path}: expected a string, found {_type_name(value)}")


def integer(value: Any, path: str, errors: list[str]) -> None:
    """An int, or text of one."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        errors.append(f"{path}: expected an integer, found {_type_name(value)}")


def mapping(value: Any, path: str, errors: list[str]) -> None:
    """A dict."""
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a mapping, found {_type_name(value)}")


def timestamp(value: Any, path: str, errors: list[str]) -> None:
    """A datetime, or ISO 8601 text of one."""
    if isinstance(value, datetime.datetime | datetime.date):
        return
    if isinstance(value, str):
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return
        except ValueError:
            pass
    errors.append(f"{path}: expected a date-time, found {value!r}")


def url(value: Any, path: str, errors: list[str]) -> None:
    """An absolute URL."""
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or not parsed.scheme or not parsed.netloc:
        errors.append(f"{path}: expected a URL, found {value!r}")


def one_of(options: tuple[str, ...]) -> Check:
    """Text equal to one of options, ignoring case."""
    def check(value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, str) or value.lower() not in {option.lower() for option in options}:
            errors.append(f"{path}: expected one of {', '.join(options)}, found {value!r}")
    return check


def list_of(item: Check) -> Check:
    """A list whose items pass item."""
    def check(value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, found {_type_name(value)}")
            return
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]", errors)
    return check


def model(required: Mapping[str, Check], optional: Mapping[str, Check]) -> Check:
    """A mapping with every required field (not null) and optional fields that are null or of their type."""
    def check(value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            errors.append(f"{path or 'descriptor'}: expected a mapping, found {_type_name(value)}")
            return
        prefix = f"{path}." if path else ""
        for key, field_check in required.items():
            if key not in value:
                errors.append(f"{prefix}{key}: field required")
            elif value[key] is None:
                errors.append(f"{prefix}{key}: may not be null")
            else:
                field_check(value[key], prefix + key, errors)
        for key, field_check in optional.items():
            if value.get(key) is not None:
                field_check(value[key], prefix + key, errors)
    return check


# ---------------------------------------------------------------------------------------------------
# The models


tag = model(
    {"tagFQN": string},
    {"description": string, "source": one_of(TAG_SOURCES), "labelType": one_of(TAG_LABEL_TYPES),
     "state": one_of(TAG_STATES), "href": string},
)


def data_type(value: Any, path: str, errors: list[str]) -> None:
    """An OpenMetadata data type."""
    if not isinstance(value, str) or value.upper() not in OPENMETADATA_TYPES:
        errors.append(f"{path}: {value!r} is not a valid OpenMetadata data type")


column = model(
    {"name": string, "dataType": data_type},
    {"dataLength": integer, "precision": integer, "scale": integer, "description": string, "tags": list_of(tag)},
)


def data_contract(value: Any, path: str, errors: list[str]) -> None:
    """`schema` must be there (null allowed): a list of columns."""
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a mapping, found {_type_name(value)}")
    elif "schema" not in value:
        errors.append(f"{path}.schema: field required")
    elif value["schema"] is not None:
        list_of(column)(value["schema"], f"{path}.schema", errors)


data_sharing_agreement = model({}, dict.fromkeys(
    ("purpose", "billing", "security", "intendedUsage", "limitations", "lifeCycle", "confidentiality"), string))

_COMPONENT: dict[str, Check] = {"kind": one_of(COMPONENT_KINDS), "id": string, "name": string,
                                "description": string, "specific": mapping}
_DEPLOYABLE: dict[str, Check] = {"infrastructureTemplateId": string, "dependsOn": list_of(string),
                                 "tags": list_of(tag)}
_DEPLOYABLE_OPTIONAL: dict[str, Check] = {"fullyQualifiedName": string, "useCaseTemplateId": string,
                                          "platform": string, "technology": string}

COMPONENT_MODELS: dict[str, Check] = {
    "outputport": model(
        {**_COMPONENT, **_DEPLOYABLE, "version": string, "outputPortType": string, "dataContract": data_contract,
         "semanticLinking": list_of(mapping)},
        {**_DEPLOYABLE_OPTIONAL, "creationDate": timestamp, "startDate": timestamp, "retentionTime": string,
         "processDescription": string, "dataSharingAgreement": data_sharing_agreement, "sampleData": mapping},
    ),
    "storage": model({**_COMPONENT, **_DEPLOYABLE}, {**_DEPLOYABLE_OPTIONAL, "storageType": string}),
    "workload": model(
        {**_COMPONENT, **_DEPLOYABLE, "version": string, "connectionType": one_of(CONNECTION_TYPES)},
        {**_DEPLOYABLE_OPTIONAL, "workloadType": string, "readsFrom": list_of(string)},
    ),
    "observability": model(
        {**_COMPONENT, "endpoint": url, **dict.fromkeys(
            ("completeness", "dataProfiling", "freshness", "availability", "dataQuality"), mapping)},
        {"fullyQualifiedName": string},
    ),
}


def component(value: Any, path: str, errors: list[str]) -> None:
    """A component, parsed by the model of its kind (the kind matched exactly, as the scaffold does)."""
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind not in COMPONENT_MODELS:
        errors.append(f"{path}.kind: unknown component kind {kind!r}")
        return
    COMPONENT_MODELS[kind](value, path, errors)


data_product = model(
    {"id": string, "name": string, "description": string, "kind": one_of(("dataproduct",)), "domain": string,
     "version": string, "environment": string, "dataProductOwner": string, "ownerGroup": string,
     "devGroup": string, "tags": list_of(tag), "specific": mapping, "components": list_of(component)},
    {"fullyQualifiedName": string, "dataProductOwnerDisplayName": string, "email": string,
     "informationSLA": string, "status": string, "maturity": string, "billing": mapping},
)


# ---------------------------------------------------------------------------------------------------
# Entry points


def data_product_problems(document: Any) -> list[str]:
    """What the scaffold's DataProduct model refuses in a data product descriptor (already parsed)."""
    errors: list[str] = []
    if isinstance(document, dict) and document.get("kind") != "dataproduct":
        errors.append(f"kind: expected 'dataproduct', found {document.get('kind')!r}")  # a Literal: exact
        document = {**document, "kind": "dataproduct"}
    data_product(document, "", errors)
    return errors


def request_problems(body: Any) -> list[str]:
    """What a scaffold adapter refuses in a provision/validate request body (a dict or its JSON text)."""
    if isinstance(body, str | bytes):
        body = json.loads(body)
    errors: list[str] = []
    model({"descriptorKind": one_of(DESCRIPTOR_KINDS), "descriptor": string}, {})(body, "", errors)
    removal = body.get("removeData") if isinstance(body, dict) else None
    if removal is not None and not isinstance(removal, bool):
        errors.append(f"removeData: expected a boolean, found {_type_name(removal)}")
    if errors:
        return errors
    try:
        document = yaml.safe_load(body["descriptor"])
    except yaml.YAMLError as error:
        return [f"descriptor: not YAML: {error}"]
    if body["descriptorKind"] != "COMPONENT_DESCRIPTOR":
        return [f"descriptor.{problem}" for problem in data_product_problems(document)]
    if not isinstance(document, dict):
        return [f"descriptor: expected a mapping, found {_type_name(document)}"]
    problems = [f"descriptor.dataProduct.{problem}" for problem in data_product_problems(document.get("dataProduct"))]
    target = document.get("componentIdToProvision")
    if not isinstance(target, str):
        problems.append(f"descriptor.componentIdToProvision: expected a string, found {_type_name(target)}")
    elif not problems and target not in [c.get("id") for c in document["dataProduct"]["components"]]:
        problems.append(f"descriptor.componentIdToProvision: no component has id {target!r}")
    return problems
