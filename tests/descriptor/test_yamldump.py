"""Writing YAML: round-trip layout, quoting that keeps types, literal blocks."""

from ruamel.yaml import YAML

from bot.descriptor.yamldump import dump_yaml


def test_layout_and_types_survive_a_round_trip():
    data = {"id": "urn:dmb:dp:a:b:1", "version": "1.0", "flag": "yes", "count": 3, "none": None,
            "list": [{"name": "a", "tags": []}], "empty": {}, "query": "SELECT 1\nFROM t\n"}
    text = dump_yaml(data)
    assert text.startswith("id: urn:dmb:dp:a:b:1\nversion: '1.0'\nflag: 'yes'\ncount: 3\nnone:\nlist:\n  - name: a\n")
    assert "query: |\n  SELECT 1\n  FROM t\n" in text
    assert YAML(typ="safe").load(text) == data


def test_long_strings_are_not_wrapped():
    long = "x " * 200
    assert dump_yaml({"d": long.strip()}).count("\n") == 1


def test_strings_that_yaml_1_1_readers_would_misread_are_quoted():
    text = dump_yaml({"a": "no", "b": "on", "c": "0755", "d": "12:30", "e": "n", "f": "normal"})
    assert text == "a: 'no'\nb: 'on'\nc: '0755'\nd: '12:30'\ne: 'n'\nf: normal\n"
