"""Access files: reading consumers with positions, adding one round-trip."""

import pytest

from bot.descriptor.access_file import (
    Consumer,
    access_path,
    output_port_of,
    read_consumers,
    with_consumer,
)
from bot.descriptor.errors import InputErrors


def test_consumers_are_read_sorted_without_repeats():
    content = b"consumers:\n  - user: bob\n  - group: acme/finance\n  - user: alice\n  - user: bob\n"
    assert read_consumers(content, "access/sales.yaml") == [
        Consumer("group", "acme/finance"), Consumer("user", "alice"), Consumer("user", "bob")]


@pytest.mark.parametrize("content", [b"", b"# nobody yet\n", b"consumers:\n", b"consumers: []\n"])
def test_an_empty_file_means_nobody(content):
    assert read_consumers(content, "access/sales.yaml") == []


def test_a_bad_entry_is_named_with_its_line():
    content = b"consumers:\n  - user: alice\n  - robot: r2d2\n"
    with pytest.raises(InputErrors) as raised:
        read_consumers(content, "access/sales.yaml")
    (error,) = raised.value.errors
    assert "consumers.1" in error.message
    assert (error.position.file, error.position.line) == ("access/sales.yaml", 3)


def test_an_unknown_key_is_refused():
    with pytest.raises(InputErrors) as raised:
        read_consumers(b"readers:\n  - user: alice\n", "access/sales.yaml")
    assert "one key, 'consumers'" in raised.value.errors[0].message


def test_an_alias_bomb_is_refused():
    bomb = b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
           b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n" \
           b"e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    with pytest.raises(InputErrors):
        read_consumers(bomb, "access/sales.yaml")


def test_adding_keeps_comments_and_order():
    content = b"# who reads sales\nconsumers:\n  - user: bob  # the analyst\n"
    updated = with_consumer(content, Consumer("user", "alice"), "sales")
    assert updated == b"# who reads sales\nconsumers:\n  - user: bob  # the analyst\n  - user: alice\n"
    assert read_consumers(updated, "access/sales.yaml") == [Consumer("user", "alice"), Consumer("user", "bob")]


def test_adding_someone_already_there_changes_nothing():
    content = b"consumers:\n- user: alice\n"
    assert with_consumer(content, Consumer("user", "alice"), "sales") is content


def test_a_new_file_is_written_when_there_is_none():
    created = with_consumer(None, Consumer("group", "acme/finance"), "sales")
    assert read_consumers(created, "access/sales.yaml") == [Consumer("group", "acme/finance")]
    assert created.startswith(b"# Consumers of the output port 'sales'")


def test_paths_and_ports():
    assert access_path("sales-view") == "access/sales-view.yaml"
    assert output_port_of("access/sales-view.yaml") == "sales-view"
    assert output_port_of("access/sales.yml") == "sales"
    assert output_port_of("access/nested/x.yaml") is None
    assert output_port_of("catalog-info.yaml") is None
    with pytest.raises(ValueError):
        access_path("../etc/passwd")
