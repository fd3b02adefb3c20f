"""Built-in checks: ids tied to the data product, and breaking changes against the previous descriptor."""

import copy

from bot.descriptor.assembly import assemble
from bot.descriptor.errors import SourcePosition
from bot.descriptor.files import MemoryReader
from bot.descriptor.model import Descriptor
from policies.builtins import CheckContext, no_breaking_changes, urn_ids
from tests.builders import SYSTEM, component, descriptor_of

PORT = """\
version: 1.0.0
dataContract:
  schema:
    - name: id
      dataType: string
    - name: amount
      dataType: DECIMAL
    - name: address
      dataType: STRUCT
      children:
        - name: city
          dataType: STRING
"""


def messages(outcome):
    return [failure.message for failure in outcome.failures]


def test_well_formed_ids_pass():
    descriptor = descriptor_of({"daily": component("daily", mesh=PORT)})
    assert urn_ids(CheckContext(descriptor, ())).failures == []
    assert urn_ids(CheckContext(descriptor, ("components", 0))).failures == []


def test_data_product_id_of_another_domain_and_major():
    system = SYSTEM.replace("    version: 1.2.0", "    id: urn:dmb:dp:sales:cashflow:2\n    version: 1.2.0")
    descriptor = assemble(MemoryReader({"catalog-info.yaml": system}))
    outcome = urn_ids(CheckContext(descriptor, ()))
    assert messages(outcome) == [
        "id 'urn:dmb:dp:sales:cashflow:2' names domain 'sales' but the data product's domain is 'finance'",
        "id 'urn:dmb:dp:sales:cashflow:2' ends with major version '2' but the data product version 1.2.0 has major 1",
    ]
    assert outcome.failures[0].path == "id"
    assert outcome.failures[0].position == SourcePosition("catalog-info.yaml", 11, 9)


def test_data_product_id_that_is_not_a_urn():
    descriptor = Descriptor(data={"id": "cashflow", "domain": "finance", "version": "1.0.0"},
                            environment="development")
    assert messages(urn_ids(CheckContext(descriptor, ()))) == [
        "id 'cashflow' is not of the form urn:dmb:dp:finance:<name>:1"
    ]


def test_bad_characters_in_name_part():
    descriptor = Descriptor(data={"id": "urn:dmb:dp:finance:cash.flow:1", "domain": "finance",
                                  "version": "1.0.0"}, environment="development")
    assert messages(urn_ids(CheckContext(descriptor, ()))) == [
        "id 'urn:dmb:dp:finance:cash.flow:1': the name part 'cash.flow' may only contain letters, digits, '_' and '-'"
    ]


def test_wrong_domain_id():
    descriptor = Descriptor(data={"id": "urn:dmb:dp:finance:cashflow:1", "domain": "finance", "version": "1.0.0",
                                  "domainId": "urn:dmb:dmn:sales"}, environment="development")
    assert messages(urn_ids(CheckContext(descriptor, ()))) == [
        "domainId 'urn:dmb:dmn:sales' should be 'urn:dmb:dmn:finance' for domain 'finance'"
    ]


def test_component_id_of_another_data_product_and_version_major():
    mesh = "id: urn:dmb:cmp:finance:budget:1:daily\nversion: 2.0.0\n"
    descriptor = descriptor_of({"daily": component("daily", mesh=mesh)})
    outcome = urn_ids(CheckContext(descriptor, ("components", 0)))
    assert messages(outcome) == [
        "component id 'urn:dmb:cmp:finance:budget:1:daily' names data product 'budget' but it belongs to "
        "'cashflow' (urn:dmb:dp:finance:cashflow:1)",
        "component version 2.0.0 has major 2 but the data product version 1.2.0 has major 1",
    ]
    assert [f.path for f in outcome.failures] == ["components[0].id", "components[0].version"]
    assert outcome.failures[1].position == SourcePosition("components/daily/catalog-info.yaml", 10, 14)


def test_component_id_with_too_few_parts():
    descriptor = descriptor_of({"daily": component("daily", mesh="id: urn:dmb:cmp:daily\nversion: 1.0.0\n")})
    assert messages(urn_ids(CheckContext(descriptor, ("components", 0)))) == [
        "component id 'urn:dmb:cmp:daily' is not of the form urn:dmb:cmp:finance:cashflow:1:<component>"
    ]


def test_no_previous_descriptor_means_nothing_to_compare():
    descriptor = descriptor_of({"daily": component("daily", mesh=PORT)})
    outcome = no_breaking_changes(CheckContext(descriptor, (), None))
    assert outcome.failures == [] and outcome.note == "no previous descriptor to compare with"
    assert not outcome.evaluated


def test_unchanged_and_added_columns_pass():
    descriptor = descriptor_of({"daily": component("daily", mesh=PORT + "    - name: extra\n      dataType: INT\n")})
    previous = descriptor_of({"daily": component("daily", mesh=PORT)}).data
    assert no_breaking_changes(CheckContext(descriptor, (), previous)).failures == []


def test_dropped_retyped_and_nested_columns_fail_with_positions():
    current_port = (PORT.replace("    - name: amount\n      dataType: DECIMAL\n", "")
                    .replace("dataType: string", "dataType: INT")
                    .replace("          dataType: STRING", "          dataType: INT"))
    descriptor = descriptor_of({"daily": component("daily", mesh=current_port)})
    previous = descriptor_of({"daily": component("daily", mesh=PORT)}).data
    outcome = no_breaking_changes(CheckContext(descriptor, (), previous))
    assert messages(outcome) == [
        "column 'id' of output port 'daily' changed dataType from string to INT; that is a breaking change that "
        "needs version 2.0.0",
        "column 'amount' was dropped from output port 'daily'; that is a breaking change that needs version 2.0.0",
        "column 'address.city' of output port 'daily' changed dataType from STRING to INT; that is a breaking "
        "change that needs version 2.0.0",
    ]
    assert [f.path for f in outcome.failures] == [
        "components[0].dataContract.schema[0].dataType",
        "components[0].dataContract.schema",
        "components[0].dataContract.schema[1].children[0].dataType",
    ]
    assert outcome.failures[0].position == SourcePosition("components/daily/catalog-info.yaml", 13, 21)


def test_type_comparison_ignores_case():
    descriptor = descriptor_of({"daily": component("daily", mesh=PORT.replace("DECIMAL", "decimal"))})
    previous = descriptor_of({"daily": component("daily", mesh=PORT)}).data
    assert no_breaking_changes(CheckContext(descriptor, (), previous)).failures == []


def test_removed_output_port_fails():
    descriptor = descriptor_of({"raw": component("raw", "storage")})
    previous = descriptor_of({"daily": component("daily", mesh=PORT), "raw": component("raw", "storage")}).data
    assert messages(no_breaking_changes(CheckContext(descriptor, (), previous))) == [
        "output port 'urn:dmb:cmp:finance:cashflow:1:daily' was removed; removing an output port is a breaking "
        "change that needs version 2.0.0"
    ]


def test_a_new_major_version_allows_breaking_changes():
    descriptor = descriptor_of({"raw": component("raw", "storage")})
    previous = copy.deepcopy(descriptor_of({"daily": component("daily", mesh=PORT)}).data)
    previous["version"] = "0.9.0"
    outcome = no_breaking_changes(CheckContext(descriptor, (), previous))
    assert outcome.failures == []
    assert outcome.note == "major version changed (0 -> 1): breaking changes allowed"


def test_the_engine_reports_a_breaking_change_check_without_previous_as_not_evaluated_with_the_reason():
    from policies.engine import evaluate
    from policies.loader import load_policies

    descriptor = descriptor_of({"daily": component("daily", mesh=PORT)})
    breaking = [policy for policy in load_policies() if policy.builtin == "no-breaking-changes"]
    assert breaking, "the built-in no-breaking-changes policy is shipped"
    results = evaluate(descriptor, breaking, None, previous_missing="nothing deployed in production")
    assert {(r.outcome, r.note) for r in results} == {("not_evaluated", "nothing deployed in production")}
    compared = evaluate(descriptor, breaking, descriptor.data)
    assert {r.outcome for r in compared} == {"passed"}


def test_a_component_id_taken_as_plain_has_nothing_the_full_look_would_find():
    # urn_ids looks at a component id part by part only when it is not a plain URN of the data product's domain,
    # name and major; on random ids and data products, the part-by-part look finds nothing in the ids it skipped
    import random

    from policies.builtins import _component_urn_failures, _terms

    rng = random.Random(20261206)
    parts = ["urn", "dmb", "cmp", "finance", "big", "1", "2", "c1", "c 1", "c1\n", "", "Finance", "x-y_z"]
    skipped = 0
    for _ in range(5000):
        data = {"domain": rng.choice(["finance", "Finance", None, 5, ""]),
                "version": rng.choice(["1.0.0", "2.1", "x.1", None, 1, "1"]),
                "id": rng.choice(["urn:dmb:dp:finance:big:1", "urn:dmb:dp:finance:big", "a:b:c:d:e:f", 5])}
        if rng.random() < 0.5:
            identifier = "urn:dmb:cmp:" + ":".join(rng.choice(parts) for _ in range(rng.choice([3, 4, 4, 5])))
        else:
            identifier = f"urn:dmb:cmp:{data['domain']}:big:{rng.choice(['1', '2'])}:c{rng.randint(0, 9)}"
        described = Descriptor(data={**data, "components": [{"id": identifier}]}, environment="production")
        reported = [failure.message for failure in urn_ids(CheckContext(described, ("components", 0))).failures]
        major, name = _terms(data["version"], data["id"])
        full = [failure.message for failure in
                _component_urn_failures(described, ("components", 0), identifier, data["domain"], major, name)]
        assert reported == full, (data, identifier)
        skipped += not full
    assert skipped > 500
