"""What the command modules share: writing bytes to a text stream."""

from __future__ import annotations

import io

from bot.cli.common import write_bytes


def test_bytes_follow_what_was_written_as_text_and_precede_what_comes_after():
    binary = io.BytesIO()
    stream = io.TextIOWrapper(binary, encoding="utf-8")
    stream.write("before ")
    write_bytes(stream, b'{"passed": true}')
    stream.write("\nafter\n")
    stream.flush()
    assert binary.getvalue() == b'before {"passed": true}\nafter\n'


def test_a_stream_without_a_binary_buffer_gets_the_text():
    stream = io.StringIO()
    stream.write("before ")
    write_bytes(stream, b"[1, 2]")
    assert stream.getvalue() == "before [1, 2]"
