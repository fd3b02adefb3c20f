"""Safe YAML loading: plain data, positions, and refusal of hostile or malformed input."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bot.descriptor.errors import InputErrors, SourcePosition
from bot.descriptor.yamlsafe import MAX_DEPTH, MAX_VALUES_PER_FILE, YamlDocument, load_documents, load_single


def errors(content: str | bytes, file: str = "catalog-info.yaml") -> list[str]:
    with pytest.raises(InputErrors) as raised:
        load_documents(content, file)
    return [str(error) for error in raised.value.errors]


def one(content: str | bytes) -> YamlDocument:
    documents = load_documents(content, "f.yaml")
    assert len(documents) == 1
    return documents[0]


# --- values ---------------------------------------------------------------------------------------


def test_scalars_follow_yaml_1_2_and_keep_timestamps_and_binary_as_text():
    document = one(textwrap.dedent("""\
        yes_word: Yes
        on_word: on
        leading_zero: 010
        octal: 0o10
        hexadecimal: 0x1F
        binary_int: 0b11
        underscored: 1_000
        negative: -42
        plus: +12
        real: 1.5e3
        infinity: .inf
        minus_infinity: -.inf
        tilde: ~
        null_word: null
        empty:
        true_word: true
        false_word: False
        date: 2022-01-01
        binary: !!binary aGk=
        forced_string: !!str 1
        sexagesimal: 1:20
        version: 1.0.0
        percent: 99.9%
        quoted: "0123"
        """))
    assert document.value == {
        "yes_word": "Yes",
        "on_word": "on",
        "leading_zero": 10,
        "octal": 8,
        "hexadecimal": 31,
        "binary_int": 3,
        "underscored": 1000,
        "negative": -42,
        "plus": 12,
        "real": 1500.0,
        "infinity": math.inf,
        "minus_infinity": -math.inf,
        "tilde": None,
        "null_word": None,
        "empty": None,
        "true_word": True,
        "false_word": False,
        "date": "2022-01-01",
        "binary": "aGk=",
        "forced_string": "1",
        "sexagesimal": "1:20",
        "version": "1.0.0",
        "percent": "99.9%",
        "quoted": "0123",
    }
    assert type(document.value["true_word"]) is bool
    assert type(document.value["leading_zero"]) is int


def test_nan_is_a_float():
    assert math.isnan(one("x: .nan\n").value["x"])


def test_mapping_keys_are_strings():
    assert one("1: a\ntrue: b\n~: c\n").value == {"1": "a", "true": "b", "~": "c"}


def test_flow_sequence_of_urns_is_read_although_libyaml_rejects_it():
    # libyaml (YAML 1.1) refuses `[urn:a:b]`; the pure YAML 1.2 composer reads it.
    document = one("dependsOn: [urn:dmb:cmp:finance:cashflow:1:raw, urn:dmb:cmp:finance:cashflow:1:view]\n")
    assert document.value == {
        "dependsOn": ["urn:dmb:cmp:finance:cashflow:1:raw", "urn:dmb:cmp:finance:cashflow:1:view"]
    }
    assert document.positions[("dependsOn", 1)] == (1, 49)


def test_byte_order_mark_is_accepted():
    assert one(b"\xef\xbb\xbfa: 1\n").value == {"a": 1}


def test_aliases_expand_to_copies_of_their_anchor():
    document = one("base: &base {x: 1, y: [a, b]}\ncopy: *base\n")
    assert document.value == {"base": {"x": 1, "y": ["a", "b"]}, "copy": {"x": 1, "y": ["a", "b"]}}
    # The alias points at where the anchor's values were written.
    assert document.positions[("copy", "y", 1)] == (1, 27)


def test_merge_keys_merge_and_explicit_keys_win():
    document = one(textwrap.dedent("""\
        defaults: &defaults {a: 1, b: 2}
        more: &more {c: 3, a: 9}
        item:
          <<: [*defaults, *more]
          b: 20
        """))
    assert document.value["item"] == {"b": 20, "a": 1, "c": 3}
    assert document.positions[("item", "b")] == (5, 6)
    assert document.positions[("item", "a")] == (1, 25)
    assert document.positions[("item", "c")] == (2, 17)


def test_merge_key_needs_mappings():
    assert errors("a: &a 1\nb:\n  <<: *a\n") == [
        "catalog-info.yaml:1:4: a merge key (<<) needs a mapping or a list of mappings"
    ]


# --- positions ------------------------------------------------------------------------------------


def test_positions_of_scalars_are_the_values_and_of_collections_their_keys():
    document = one(textwrap.dedent("""\
        metadata:
          name: finance.cashflow.1
        spec:
          mesh:
            tags:
              - tagFQN: finance
              - plain
            empty: {}
        """))
    assert document.positions == {
        (): (1, 1),
        ("metadata",): (1, 1),
        ("metadata", "name"): (2, 9),
        ("spec",): (3, 1),
        ("spec", "mesh"): (4, 3),
        ("spec", "mesh", "tags"): (5, 5),
        ("spec", "mesh", "tags", 0): (6, 9),
        ("spec", "mesh", "tags", 0, "tagFQN"): (6, 17),
        ("spec", "mesh", "tags", 1): (7, 9),
        ("spec", "mesh", "empty"): (8, 5),
    }


def test_position_falls_back_to_the_nearest_written_ancestor():
    document = one("spec:\n  mesh:\n    version: 1.0.0\n")
    assert document.position(("spec", "mesh", "version")) == SourcePosition("f.yaml", 3, 14)
    assert document.position(("spec", "mesh", "missing", "deeper")) == SourcePosition("f.yaml", 2, 3)
    assert document.position(("nowhere",)) == SourcePosition("f.yaml", 1, 1)
    assert document.position() == SourcePosition("f.yaml", 1, 1)


def test_documents_and_their_positions_in_a_multi_document_file():
    documents = load_documents("# comment\nkind: System\n---\n---\n\nkind: Location\n...\n", "c.yaml")
    assert [d.value for d in documents] == [{"kind": "System"}, {"kind": "Location"}]
    assert [d.position() for d in documents] == [SourcePosition("c.yaml", 2, 1), SourcePosition("c.yaml", 6, 1)]
    assert [d.position(("kind",)) for d in documents] == [
        SourcePosition("c.yaml", 2, 7),
        SourcePosition("c.yaml", 6, 7),
    ]


def test_empty_content_has_no_documents():
    assert load_documents("", "f.yaml") == []
    assert load_documents("# only a comment\n", "f.yaml") == []
    assert load_single(b"", "f.yaml") is None


def test_load_single_refuses_several_documents():
    with pytest.raises(InputErrors) as raised:
        load_single("a: 1\n---\nb: 2\n", "environments/production/configurations.yaml")
    assert [str(e) for e in raised.value.errors] == [
        "environments/production/configurations.yaml:3:1: expected one YAML document, found several"
    ]


def test_load_single_returns_the_document():
    document = load_single("a: [1, 2]\n", "f.yaml")
    assert document is not None and document.value == {"a": [1, 2]}


# --- malformed and hostile input ------------------------------------------------------------------


def test_malformed_yaml_reports_the_problem_and_where():
    assert errors("metadata:\n  name: [a, b\nspec: {}\n") == [
        "catalog-info.yaml:3:5: malformed YAML: the '[' opened on line 2, column 9 is never closed (or a ',' is "
        "missing); the parser says: while parsing a flow sequence expected ',' or ']', but got ':'"
    ]
    assert errors("kind: a: b\n") == [
        "catalog-info.yaml:1:8: malformed YAML: line 1 has a second ': ' in one value: put the value in quotes; the "
        "parser says: mapping values are not allowed here"
    ]
    assert errors('kind: "System\n') == [
        "catalog-info.yaml:2:1: malformed YAML: the quote opened on line 1, column 7 is never closed; the parser "
        "says: while scanning a quoted scalar found unexpected end of stream"
    ]
    assert errors("kind: System\n\tspec: {}\n") == [
        "catalog-info.yaml:2:1: malformed YAML: a tab in the indentation of line 2: YAML indents with spaces only; "
        "the parser says: while scanning for the next token found character '\\t' that cannot start any token"
    ]


def test_duplicate_keys_are_refused():
    assert errors("kind: System\nmetadata:\n  name: a\n  title: A\n  name: b\n") == [
        "catalog-info.yaml:5:3: duplicate key 'name' (first defined on line 3)"
    ]


def test_duplicate_keys_in_flow_mappings_are_refused():
    assert errors("a: {x: 1, x: 2}\n") == ["catalog-info.yaml:1:11: duplicate key 'x' (first defined on line 1)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!python/object/apply:os.system ['true']\n",
         "catalog-info.yaml:1:4: unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system"),
        ("a: !!python/name:os.system\n",
         "catalog-info.yaml:1:4: unsupported YAML tag tag:yaml.org,2002:python/name:os.system"),
        ("a: !custom value\n", "catalog-info.yaml:1:4: unsupported YAML tag !custom"),
        ("a:\n  b: !custom {x: 1}\n", "catalog-info.yaml:2:6: unsupported YAML tag !custom"),
        ("a: !custom [1]\n", "catalog-info.yaml:1:4: unsupported YAML tag !custom"),
        ("!!set {a, b}\n", "catalog-info.yaml:1:1: unsupported YAML tag tag:yaml.org,2002:set"),
        ("a: !!omap [x: 1]\n", "catalog-info.yaml:1:4: unsupported YAML tag tag:yaml.org,2002:omap"),
    ],
)
def test_unknown_and_python_tags_are_refused(text, expected):
    assert errors(text) == [expected]


def test_complex_keys_are_refused():
    assert errors("? [a, b]\n: 1\n") == ["catalog-info.yaml:1:3: mapping keys must be plain scalars"]


def test_invalid_utf8_reports_line_and_column_of_the_first_bad_byte():
    assert errors(b"kind: System\nmetadata:\n  name: caf\xe9\n") == [
        "catalog-info.yaml:3:12: file is not valid UTF-8"
    ]
    assert errors(b"\xff\xfe") == ["catalog-info.yaml:1:1: file is not valid UTF-8"]


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        previous = f"*l{level - 1}"
        lines.append(f"l{level}: &l{level} [{', '.join([previous] * 9)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_quickly():
    started = time.perf_counter()
    found = errors(billion_laughs())
    elapsed = time.perf_counter() - started
    # l5 is the first anchor that expands past 500,000 values (9**6 = 531,441 strings).
    assert found == [
        f"catalog-info.yaml:6:5: YAML aliases expand to more than {MAX_VALUES_PER_FILE} values; "
        "refusing (alias bomb?)"
    ]
    assert elapsed < 0.5


def test_aliases_within_the_limit_are_expanded():
    document = one(billion_laughs(levels=4))
    assert len(document.value["l4"]) == 9
    assert document.value["l4"][8][8][8][8][8] == "lol"


def test_recursive_aliases_are_refused():
    assert errors("a: &a [1, *a]\n") == ["catalog-info.yaml:1:4: recursive YAML alias: a value contains itself"]
    assert errors("&m {self: *m}\n") == ["catalog-info.yaml:1:1: recursive YAML alias: a value contains itself"]


def test_nesting_up_to_the_limit_is_read():
    document = one("[" * MAX_DEPTH + "x" + "]" * MAX_DEPTH)
    value = document.value
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == ["x"]


def test_deep_flow_nesting_is_refused():
    # The root is level 0: 101 nested lists put an empty list at level 100 (allowed), a value in it at 101.
    depth = MAX_DEPTH + 1
    assert one("[" * depth + "]" * depth).value is not None
    assert errors("[" * depth + "x" + "]" * depth) == [
        "catalog-info.yaml:1:102: YAML nesting is deeper than 100 levels"
    ]
    assert errors("[" * (depth + 1) + "]" * (depth + 1)) == [
        "catalog-info.yaml:1:102: YAML nesting is deeper than 100 levels"
    ]


def test_deep_block_nesting_is_refused():
    text = "".join("  " * level + "k:\n" for level in range(150))
    assert errors(text) == ["catalog-info.yaml:102:203: YAML nesting is deeper than 100 levels"]


def test_deep_nesting_through_aliases_is_refused():
    text = "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50 + "\n"
    assert errors(text) == ["catalog-info.yaml:1:57: YAML nesting is deeper than 100 levels"]


@pytest.mark.parametrize("kind", ["flow", "mapping", "block", "after-libyaml-failure"])
def test_very_deep_nesting_neither_crashes_nor_hangs(kind):
    # libyaml's composer recurses in C: 30,000 levels used to kill the process with SIGSEGV.
    script = textwrap.dedent(f"""\
        import time
        from bot.descriptor.errors import InputErrors
        from bot.descriptor.yamlsafe import load_documents
        n = 300_000
        texts = {{
            "flow": "[" * n + "]" * n,
            "mapping": "{{a: " * n + "}}" * n,
            "block": "- " * n + "x\\n",
            "after-libyaml-failure": "a: [urn:a:b]\\nb: " + "[" * n + "]" * n,
        }}
        started = time.perf_counter()
        try:
            load_documents(texts[{kind!r}], "deep.yaml")
        except InputErrors as error:
            print(error)
        print(round(time.perf_counter() - started, 1))
        """)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert run.returncode == 0, run.stderr
    message, elapsed = run.stdout.splitlines()
    assert message.startswith("deep.yaml:")
    assert message.endswith(": YAML nesting is deeper than 100 levels")
    assert float(elapsed) < 10


EQUIVALENCE_CORPUS = [
    "a: 1\nb: [urn:dmb:cmp:a:b:1:c, group:x, 'q', \"d\"]\nc: {k: v, n: ~}\n",
    "yes: yes\nno: no\non: off\ny: n\noctal: 010\no: 0o17\nhex: 0x1F\nbin: 0b101\nu: 1_000\n",
    "f: 1.5\ne: 1e3\ninf: -.inf\nnan: .nan\nd: 2024-01-01\nt: 2024-01-01T10:00:00Z\nv: 1.0.0\n",
    "t: true\nT: True\nF: FALSE\nn: null\nN: Null\ne:\ns: !!str 12\neq: =\n",
    "base: &b {x: 1, y: [1, 2]}\nchild:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n",
    "text: |\n  line one\n  line two\nfolded: >-\n  folded\n  text\nquoted: 'it''s'\n",
    "- a\n- - b\n  - c\n- {d: [e, {f: g}]}\n",
    "first: 1\n---\nsecond: 2\n---\n",
]


@pytest.mark.parametrize("text", EQUIVALENCE_CORPUS)
def test_fast_and_pure_composers_give_the_same_values_and_positions(text):
    fast = load_documents(text, "f.yaml")
    pure = load_documents(text, "f.yaml", fast=False)
    assert [d.value for d in fast] == [d.value for d in pure]
    # An empty value has no text: libyaml places it after the colon, ruamel at the next token.
    written = [{p: v for p, v in d.positions.items() if not (p and _value_at(d.value, p) is None)} for d in fast]
    assert written == [{p: v for p, v in d.positions.items() if p in w} for d, w in zip(pure, written, strict=True)]
    assert all(len(w) == len(d.positions) - _empty_values(d.value) for w, d in zip(written, pure, strict=True))


def _value_at(value, path):
    for part in path:
        value = value[part]
    return value


def _empty_values(value):
    if isinstance(value, dict):
        return sum(_empty_values(v) for v in value.values())
    if isinstance(value, list):
        return sum(_empty_values(v) for v in value)
    return 1 if value is None else 0


def test_yaml_1_2_typing_on_the_fast_path():
    [document] = load_documents(EQUIVALENCE_CORPUS[1] + EQUIVALENCE_CORPUS[3], "f.yaml")
    assert document.value["yes"] == "yes" and document.value["on"] == "off" and document.value["y"] == "n"
    assert document.value["octal"] == 10 and document.value["o"] == 15 and document.value["hex"] == 31
    assert document.value["s"] == "12" and document.value["eq"] == "=" and document.value["e"] is None
