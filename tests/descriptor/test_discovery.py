"""Finding entities: catalog-info files anywhere in the tree, Location targets, entity shape and references."""

from __future__ import annotations

import time

import pytest

from bot.descriptor.discovery import discover, is_catalog_file
from bot.descriptor.entities import entity_shape_error, mesh_positions, parse_reference, reference_name
from bot.descriptor.errors import SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES, DirectoryReader, FileReader, MemoryReader
from bot.descriptor.yamlsafe import load_single


def entity(kind: str, name: str, extra: str = "") -> str:
    """Lines: 1 apiVersion / 2 kind / 3 metadata / 4 name (col 9) / 5.. extra."""
    return f"apiVersion: backstage.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n{extra}"


def location(*targets: str) -> str:
    """A Location; its targets are on lines 7, 8, ... at column 7."""
    lines = "".join(f"    - {target}\n" for target in targets)
    return entity("Location", "extra-parts", f"spec:\n  targets:\n{lines}")


def found(reader: FileReader, remote=None) -> tuple[list[tuple[str, str, str]], list[str]]:
    result = discover(reader, remote)
    return [(e.kind, e.name, e.file) for e in result.entities], [str(error) for error in result.errors]


class FakeRemote:
    """Another repository, read at a pinned tag."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.reader = MemoryReader({
            "parts/catalog-info.yaml": entity("Component", "remote.port") + "---\n" + location("../shared.yaml"),
            "shared.yaml": entity("Component", "remote.shared"),
            "outside.yaml": location("../../x.yaml"),
        })

    def open(self, target: str) -> tuple[FileReader, str, str]:
        self.opened.append(target)
        if "missing" in target:
            raise LookupError("no such repository: acme/missing")
        path = target.rsplit("/-/blob/v1.0.0/", 1)[1]
        return self.reader, path, f"gitlab.example.com/acme/parts@v1.0.0:{path}"


# --- catalog files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("catalog-info.yaml", True),
        ("catalog-info.yml", True),
        ("deep/down/catalog-info.yaml", True),
        ("catalog-info.yaml.bak", False),
        ("my-catalog-info.yaml", False),
        (".github/catalog-info.yaml", False),
        ("a/.hidden/catalog-info.yaml", False),
        ("environments/production/configurations.yaml", False),
    ],
)
def test_is_catalog_file(path, expected):
    assert is_catalog_file(path) is expected


def test_catalog_files_anywhere_in_the_tree_root_first():
    reader = MemoryReader({
        "z/catalog-info.yaml": entity("Component", "z"),
        "a/b/catalog-info.yml": entity("Component", "ab"),
        "catalog-info.yaml": entity("System", "s"),
        "a/catalog-info.yaml": entity("Component", "a"),
        ".hidden/catalog-info.yaml": entity("Component", "hidden"),
        "a/other.yaml": entity("Component", "not-a-catalog-file"),
    })
    assert found(reader) == (
        [
            ("System", "s", "catalog-info.yaml"),
            ("Component", "a", "a/catalog-info.yaml"),
            ("Component", "z", "z/catalog-info.yaml"),
            ("Component", "ab", "a/b/catalog-info.yml"),
        ],
        [],
    )


def test_several_entities_in_one_file():
    reader = MemoryReader({"catalog-info.yaml": entity("System", "s") + "---\n" + entity("Component", "c")})
    result = discover(reader)
    assert [(e.kind, e.name) for e in result.entities] == [("System", "s"), ("Component", "c")]
    assert result.entities[1].position("metadata", "name") == SourcePosition("catalog-info.yaml", 9, 9)


def test_directory_reader_skips_git(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "catalog-info.yaml").write_text("{{ not yaml")
    (tmp_path / "catalog-info.yaml").write_text(entity("System", "s"))
    assert found(DirectoryReader(tmp_path)) == ([("System", "s", "catalog-info.yaml")], [])


def test_catalog_file_linked_out_of_the_root_is_not_read(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere.yaml").write_text(entity("System", "foreign"))
    (root / "sub" / "catalog-info.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    (root / "catalog-info.yaml").write_text(entity("System", "s"))
    assert found(DirectoryReader(root)) == (
        [("System", "s", "catalog-info.yaml")],
        ["sub/catalog-info.yaml: file not found"],
    )


# --- Location targets -----------------------------------------------------------------------------


def test_location_targets_relative_to_the_location_file():
    reader = MemoryReader({
        "catalog-info.yaml": entity("System", "s") + "---\n" + location("./parts/a.yaml", "parts/b.yaml"),
        "parts/a.yaml": entity("Component", "a"),
        "parts/b.yaml": entity("Component", "b"),
        "nested/catalog-info.yaml": location("../parts/c.yaml", "d.yaml"),
        "nested/d.yaml": entity("Component", "d"),
        "parts/c.yaml": entity("Component", "c"),
    })
    assert found(reader) == (
        [
            ("System", "s", "catalog-info.yaml"),
            ("Location", "extra-parts", "catalog-info.yaml"),
            ("Location", "extra-parts", "nested/catalog-info.yaml"),
            ("Component", "a", "parts/a.yaml"),
            ("Component", "b", "parts/b.yaml"),
            ("Component", "c", "parts/c.yaml"),
            ("Component", "d", "nested/d.yaml"),
        ],
        [],
    )


def test_single_target_and_glob_targets():
    reader = MemoryReader({
        "catalog-info.yaml": entity("Location", "one", "spec:\n  type: file\n  target: ./parts/*.yaml\n"),
        "parts/a.yaml": entity("Component", "a"),
        "parts/b.yaml": entity("Component", "b"),
        "parts/readme.md": "# parts",
    })
    assert found(reader)[0] == [
        ("Location", "one", "catalog-info.yaml"),
        ("Component", "a", "parts/a.yaml"),
        ("Component", "b", "parts/b.yaml"),
    ]


def test_glob_wildcards_stay_within_one_folder_and_double_star_spans_folders():
    reader = MemoryReader({
        "catalog-info.yaml": entity("Location", "one", "spec:\n  targets: ['./*.yaml', 'parts/**/c?.yaml']\n"),
        "a.yaml": entity("Component", "a"),
        # Not matched by ./*.yaml: an override file is not an entity.
        "environments/production/configurations.yaml": "version: 2.0.0\n",
        "parts/c1.yaml": entity("Component", "c1"),
        "parts/x/y/c2.yaml": entity("Component", "c2"),
        "parts/x/c10.yaml": entity("Component", "not-matched"),
    })
    assert found(reader) == (
        [
            ("Location", "one", "catalog-info.yaml"),
            ("Component", "a", "a.yaml"),
            ("Component", "c1", "parts/c1.yaml"),
            ("Component", "c2", "parts/x/y/c2.yaml"),
        ],
        [],
    )


def test_glob_with_many_double_stars_is_quick():
    target = "/".join(["**"] * 200 + ["*.yaml"])
    files = {f"{'/'.join('d' * 30)}/{n}.yaml": entity("Component", f"c{n}") for n in range(50)}
    reader = MemoryReader({"catalog-info.yaml": entity("Location", "l", f"spec:\n  target: '{target}'\n"), **files})
    started = time.perf_counter()
    assert len(found(reader)[0]) == 51
    assert time.perf_counter() - started < 2


def test_files_reached_twice_are_read_once_and_location_loops_end():
    reader = MemoryReader({
        "catalog-info.yaml": entity("System", "s") + "---\n" + location("./catalog-info.yaml", "loop.yaml"),
        "loop.yaml": location("catalog-info.yaml", "./loop.yaml"),
    })
    assert found(reader) == (
        [
            ("System", "s", "catalog-info.yaml"),
            ("Location", "extra-parts", "catalog-info.yaml"),
            ("Location", "extra-parts", "loop.yaml"),
        ],
        [],
    )


def test_location_target_errors():
    reader = MemoryReader({
        "catalog-info.yaml": location("../x.yaml", "/etc/passwd", "./missing.yaml", "parts/*.yml", "123", "''"),
        "sub/catalog-info.yaml": location("../../x.yaml"),
    })
    assert found(reader) == (
        [("Location", "extra-parts", "catalog-info.yaml"), ("Location", "extra-parts", "sub/catalog-info.yaml")],
        [
            "catalog-info.yaml:7:7: Location target '../x.yaml' is outside the repository",
            "catalog-info.yaml:8:7: Location target '/etc/passwd' is outside the repository",
            "catalog-info.yaml:9:7: Location target './missing.yaml' not found (looked for 'missing.yaml')",
            "catalog-info.yaml:10:7: Location target 'parts/*.yml' matches no file",
            "catalog-info.yaml:11:7: Location target must be a non-empty string",
            "catalog-info.yaml:12:7: Location target must be a non-empty string",
            "sub/catalog-info.yaml:7:7: Location target '../../x.yaml' is outside the repository",
        ],
    )


def test_location_targets_must_be_a_list():
    reader = MemoryReader({"catalog-info.yaml": entity("Location", "l", "spec:\n  targets: ./a.yaml\n")})
    assert found(reader)[1] == ["catalog-info.yaml:6:12: Location 'spec.targets' must be a list"]


def test_remote_target_without_a_remote_reader():
    target = "https://gitlab.example.com/acme/parts/-/blob/v1.0.0/parts/catalog-info.yaml"
    reader = MemoryReader({"catalog-info.yaml": location(target)})
    assert found(reader)[1] == [
        f"catalog-info.yaml:7:7: Location target '{target}' is in another repository; remote targets are read "
        "through the forge connection, which a local check does not have"
    ]


def test_remote_targets_through_the_remote_reader():
    remote = FakeRemote()
    reader = MemoryReader({
        "catalog-info.yaml": location(
            "https://gitlab.example.com/acme/parts/-/blob/v1.0.0/parts/catalog-info.yaml",
            "https://gitlab.example.com/acme/missing/-/blob/v1.0.0/catalog-info.yaml",
            "https://gitlab.example.com/acme/parts/-/blob/v1.0.0/outside.yaml",
        )
    })
    entities, errors = found(reader, remote)
    assert entities == [
        ("Location", "extra-parts", "catalog-info.yaml"),
        ("Component", "remote.port", "gitlab.example.com/acme/parts@v1.0.0:parts/catalog-info.yaml"),
        ("Location", "extra-parts", "gitlab.example.com/acme/parts@v1.0.0:parts/catalog-info.yaml"),
        ("Location", "extra-parts", "gitlab.example.com/acme/parts@v1.0.0:outside.yaml"),
        ("Component", "remote.shared", "gitlab.example.com/acme/parts@v1.0.0:shared.yaml"),
    ]
    assert errors == [
        "catalog-info.yaml:8:7: cannot read Location target "
        "'https://gitlab.example.com/acme/missing/-/blob/v1.0.0/catalog-info.yaml': no such repository: acme/missing",
        "gitlab.example.com/acme/parts@v1.0.0:outside.yaml:7:7: Location target '../../x.yaml' is outside the "
        "repository",
    ]
    assert len(remote.opened) == 3


# --- files that cannot be read --------------------------------------------------------------------


def test_file_over_the_size_limit():
    reader = MemoryReader({
        "big/catalog-info.yaml": b"#" * (MAX_FILE_BYTES + 1),
        "catalog-info.yaml": entity("System", "s"),
    })
    assert found(reader) == (
        [("System", "s", "catalog-info.yaml")],
        ["big/catalog-info.yaml: file is 1048577 bytes, over the 1 MiB limit"],
    )


def test_missing_location_target_file_in_a_lying_listing():
    class Lying(MemoryReader):
        def list_files(self):
            return [*super().list_files(), "ghost/catalog-info.yaml"]

    assert found(Lying({}))[1] == ["ghost/catalog-info.yaml: file not found"]


def test_problems_in_one_file_do_not_hide_the_others():
    reader = MemoryReader({
        "catalog-info.yaml": entity("System", "s"),
        "a/catalog-info.yaml": "kind: [\n",
        "b/catalog-info.yaml": b"kind: \xff\n",
        "c/catalog-info.yaml": entity("Component", "c"),
        "d/catalog-info.yaml": "",
    })
    assert found(reader) == (
        [("System", "s", "catalog-info.yaml"), ("Component", "c", "c/catalog-info.yaml")],
        [
            "a/catalog-info.yaml:2:1: malformed YAML: the '[' opened on line 1, column 7 is never closed; the "
            "parser says: while parsing a flow node expected the node content, but found '<stream end>'",
            "b/catalog-info.yaml:1:7: file is not valid UTF-8",
            "d/catalog-info.yaml:1:1: file is empty: expected a Backstage entity",
        ],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- kind: System\n", "catalog-info.yaml:1:1: not a Backstage entity: expected a mapping with apiVersion, "
                             "kind and metadata"),
        ("just text\n", "catalog-info.yaml:1:1: not a Backstage entity: expected a mapping with apiVersion, "
                        "kind and metadata"),
        ("apiVersion: v1\nmetadata:\n  name: x\n", "catalog-info.yaml:1:1: not a Backstage entity: missing 'kind'"),
        ("spec: {}\n", "catalog-info.yaml:1:1: not a Backstage entity: missing 'apiVersion', 'kind', 'metadata'"),
        ("apiVersion: v1\nkind: 3\nmetadata: {name: x}\n",
         "catalog-info.yaml:2:7: not a Backstage entity: 'kind' must be a string"),
        ("apiVersion: v1\nkind: ''\nmetadata: {name: x}\n",
         "catalog-info.yaml:2:7: not a Backstage entity: 'kind' must be a string"),
        ("apiVersion: v1\nkind: System\nmetadata:\n  title: x\n",
         "catalog-info.yaml:3:1: not a Backstage entity: 'metadata.name' must be a non-empty string"),
        ("apiVersion: v1\nkind: System\nmetadata:\n  name:\n",
         "catalog-info.yaml:4:8: not a Backstage entity: 'metadata.name' must be a non-empty string"),
        ("apiVersion: v1\nkind: System\nmetadata: x\n",
         "catalog-info.yaml:3:11: not a Backstage entity: 'metadata.name' must be a non-empty string"),
        ("apiVersion: v1\nkind: System\nmetadata: {name: s}\nspec: [1]\n",
         "catalog-info.yaml:4:1: 'spec' must be a mapping"),
    ],
)
def test_documents_that_are_not_entities(text, expected):
    assert found(MemoryReader({"catalog-info.yaml": text})) == ([], [expected])


def test_a_bad_document_does_not_hide_the_good_one_in_the_same_file():
    reader = MemoryReader({"catalog-info.yaml": "- a list\n---\n" + entity("System", "s")})
    assert found(reader) == (
        [("System", "s", "catalog-info.yaml")],
        ["catalog-info.yaml:1:1: not a Backstage entity: expected a mapping with apiVersion, kind and metadata"],
    )


# --- entities and references ----------------------------------------------------------------------


def test_entity_accessors():
    text = entity("system", "finance.cashflow.1", "  namespace: finance\nspec:\n  mesh:\n    version: 1.0.0\n")
    only = discover(MemoryReader({"catalog-info.yaml": text})).entities[0]
    assert (only.kind, only.name, only.namespace, only.file, only.path) == (
        "system", "finance.cashflow.1", "finance", "catalog-info.yaml", "catalog-info.yaml"
    )
    assert only.is_kind("System") and not only.is_kind("Component")
    assert only.spec == {"mesh": {"version": "1.0.0"}}
    assert mesh_positions(only) == {(): (7, 3), ("version",): (8, 14)}
    bare = discover(MemoryReader({"catalog-info.yaml": entity("System", "s")})).entities[0]
    assert (bare.namespace, bare.spec) == ("default", {})


def test_entity_shape_of_a_good_entity_is_none():
    document = load_single(entity("Component", "c", "spec:\n  type: storage\n"), "c.yaml")
    assert document is not None and entity_shape_error(document) is None


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("finance.cashflow.1", ("system", None, "finance.cashflow.1")),
        ("system:finance.cashflow.1", ("system", None, "finance.cashflow.1")),
        ("system:default/finance.cashflow.1", ("system", "default", "finance.cashflow.1")),
        ("System:finance/finance.cashflow.1", ("system", "finance", "finance.cashflow.1")),
        ("group:finance-devs", ("group", None, "finance-devs")),
    ],
)
def test_parse_reference(reference, expected):
    assert parse_reference(reference, "System") == expected


@pytest.mark.parametrize(
    ("reference", "kind", "expected"),
    [
        ("finance.cashflow.1", "system", "finance.cashflow.1"),
        ("system:finance.cashflow.1", "system", "finance.cashflow.1"),
        ("system:default/finance.cashflow.1", "system", "finance.cashflow.1"),
        ("  system:finance.cashflow.1 ", "system", "finance.cashflow.1"),
        ("component:finance.cashflow.1", "system", None),
        ("finance", "domain", "finance"),
        ("domain:finance", "domain", "finance"),
        ("domain:default/finance", "domain", "finance"),
        ("", "domain", None),
        (None, "domain", None),
        (3, "system", None),
    ],
)
def test_reference_name(reference, kind, expected):
    assert reference_name(reference, kind) == expected
