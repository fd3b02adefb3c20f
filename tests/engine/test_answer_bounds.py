"""Bounds on a tech adapter's answer in a task record: each part within its cap, still valid, saying what was cut."""

from __future__ import annotations

import json
import random
import re

from bot.engine.answer_bounds import (
    MAX_PART_BYTES,
    bounded_answer,
    bounded_details,
    bounded_info,
    bounded_logs,
    bounded_text,
    json_size,
)
from bot.engine.deployment import TaskState
from bot.engine.store import MAX_LOG_ENTRIES, tasks_key
from tests.engine.test_store import LEDGER, make_deployment

CUT = re.compile(r"…\(cut: (\d+) bytes more; the adapter's full answer was not kept\)$")


def cut_off(text: str) -> int:
    """The N of the note ending a clipped text."""
    found = CUT.search(text)
    assert found, f"no cut note at the end of {text[-120:]!r}"
    return int(found.group(1))


def test_the_cap_is_256_kib():
    assert MAX_PART_BYTES == 256 * 1024


def test_parts_within_the_cap_are_kept_as_they_are():
    answer = {"state": TaskState.COMPLETED, "finishedAt": "t1", "message": "done",
              "info": {"publicInfo": {"table": {"type": "string", "label": "Table", "value": "ledger"}}},
              "logs": [{"timestamp": "t0", "level": "INFO", "message": "created"}], "details": ["field: x"]}
    assert bounded_answer(answer) == answer
    text = "x" * (MAX_PART_BYTES - 2)  # exactly the cap once quoted
    assert json_size(text) == MAX_PART_BYTES and bounded_text(text) is text
    assert bounded_info(None) is None


def test_a_long_text_keeps_its_longest_start_and_says_how_much_was_cut():
    block = "".join(random.Random(1).choice("abcdefgh \n\"\\") for _ in range(997))  # escapes at odd places
    text = block * 20_060
    clipped = bounded_text(text)
    assert json_size(clipped) <= MAX_PART_BYTES
    kept = CUT.split(clipped)[0]
    assert text.startswith(kept) and cut_off(clipped) == len(text) - len(kept)
    assert json_size(text[:len(kept) + 1] + clipped[len(kept):]) > MAX_PART_BYTES  # one character more would not fit


def test_a_text_is_cut_between_characters_and_counted_in_utf8_bytes():
    text = "é😀\ud800" * 50_000  # 2, 4 and 3 bytes (a lone surrogate JSON may carry): 6, 12 and 6 once escaped
    clipped = bounded_text(text, 10_000)
    assert json_size(clipped) <= 10_000 and json.loads(json.dumps(clipped)) == clipped
    kept = CUT.split(clipped)[0]
    assert text.startswith(kept)
    assert cut_off(clipped) == len(text[len(kept):].encode("utf-8", "surrogatepass"))


def test_logs_keep_the_newest_entries_after_one_saying_how_many_were_dropped():
    logs = [{"timestamp": f"t{index}", "level": "INFO", "message": f"step {index} " + "x" * 3000}
            for index in range(MAX_LOG_ENTRIES)]
    kept = bounded_logs(logs)
    assert json_size(kept) <= MAX_PART_BYTES
    note, *newest = kept
    assert newest == logs[-len(newest):] and 50 < len(newest) < MAX_LOG_ENTRIES
    assert note == {"level": "WARNING",
                    "message": f"meshbot dropped {MAX_LOG_ENTRIES - len(newest)} older log entries: the adapter's "
                               f"logs were {json_size(logs)} bytes, over the 256 KiB meshbot keeps"}
    assert json_size([note, logs[-len(newest) - 1], *newest]) > MAX_PART_BYTES  # no room for one more


def test_a_newest_log_entry_too_large_to_keep_drops_them_all():
    logs = [{"level": "INFO", "message": "small"}, {"level": "ERROR", "message": "y" * MAX_PART_BYTES}]
    assert bounded_logs(logs) == [{"level": "WARNING", "message": "meshbot dropped 2 older log entries: the adapter's "
                                   f"logs were {json_size(logs)} bytes, over the 256 KiB meshbot keeps"}]


def test_details_keep_the_first_lines_then_say_how_many_more_were_dropped():
    details = [f"problem: {index} " + "z" * 900 for index in range(1000)]
    kept = bounded_details(details)
    assert json_size(kept) <= MAX_PART_BYTES
    *first, note = kept
    assert first == details[:len(first)] and len(first) > 200
    assert note == (f"… meshbot dropped {1000 - len(first)} more lines: the details were {json_size(details)} bytes, "
                    "over the 256 KiB meshbot keeps")


def test_info_keeps_the_keys_that_fit_and_names_those_not_stored():
    public = {"table": {"type": "string", "label": "Table", "value": "ledger"}}
    info = {"publicInfo": public, "privateInfo": {"dump": "p" * 20_000_000}}
    kept = bounded_info(info)
    assert kept == {"publicInfo": public, "meshbot": f"info was {json_size(info)} bytes, over the 256 KiB meshbot "
                                                     "keeps; not stored: privateInfo"}


def test_info_with_nothing_that_fits_is_replaced_by_the_note():
    info = {"publicInfo": {"dump": "q" * 300_000}, "privateInfo": {"dump": "r" * 300_000}}
    assert bounded_info(info) == {"meshbot": f"info was {json_size(info)} bytes, over the 256 KiB meshbot keeps; "
                                             "not stored"}
    assert bounded_info(["not", "an", "object", "x" * 300_000]) == {
        "meshbot": "info was 300027 bytes, over the 256 KiB meshbot keeps; not stored"}


def test_info_with_many_keys_names_five_clipped_and_counts_the_rest():
    info = {"publicInfo": {"a": 1}, **{f"{'k' * 100}{index}": "v" * 100_000 for index in range(8)}}
    kept = bounded_info(info)
    assert json_size(kept) <= MAX_PART_BYTES
    assert list(kept) == ["publicInfo", "k" * 100 + "0", "k" * 100 + "1", "meshbot"]
    assert kept["meshbot"].endswith("not stored: " + ", ".join(["k" * 64 + "…"] * 5) + " and 1 more key")


def test_every_part_stays_within_its_cap_whatever_its_shape():
    rng = random.Random(13)
    alphabet = "ab\"\\\n\x01é😀\ud800"

    def text(size: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(size))

    for limit in (6_000, 20_000, 65_536):
        for _ in range(20):
            answer = {
                "message": text(rng.randrange(limit * 2)),
                "info": {text(rng.randrange(1, 200)): {"value": text(rng.randrange(limit // 2))}
                         for _ in range(rng.randrange(6))},
                "logs": [{"level": "INFO", "message": text(rng.randrange(limit // 4))}
                         for _ in range(rng.randrange(12))],
                "details": [text(rng.randrange(limit // 4)) for _ in range(rng.randrange(12))],
            }
            bounded = bounded_answer(answer, limit)
            for part in ("message", "info", "logs", "details"):
                assert json_size(bounded[part]) <= limit, (part, limit)
                if json_size(answer[part]) <= limit:
                    assert bounded[part] == answer[part]
                assert json.loads(json.dumps(bounded[part])) == bounded[part]


def test_the_store_bounds_every_answer_it_records(redis_engine):
    store = redis_engine.store
    deployment = make_deployment()
    store.create(deployment)
    record = store.update_task(
        deployment.id, LEDGER, state=TaskState.COMPLETED, message="m" * 5_000_000,
        info={"publicInfo": {"a": "b" * 5_000_000}}, details=["d" * 1000] * 5000,
        logs=[{"level": "INFO", "message": "l" * 100_000}] * 50)
    assert record == store.task_states(deployment.id)[LEDGER]
    assert cut_off(record["message"]) > 4_000_000
    assert record["info"] == {"meshbot": "info was 5000025 bytes, over the 256 KiB meshbot keeps; not stored"}
    assert record["logs"][0]["message"].startswith("meshbot dropped 48 older log entries")
    assert record["details"][-1].startswith("… meshbot dropped")
    assert redis_engine.redis.hstrlen(tasks_key(deployment.id), LEDGER) < 4 * MAX_PART_BYTES + 1000


def test_the_kept_provision_result_is_capped_like_the_message():
    bounded = bounded_answer({"result": "r" * (3 * MAX_PART_BYTES), "state": "COMPLETED"})
    assert json_size(bounded["result"]) <= MAX_PART_BYTES and bounded["result"].startswith("rrr")
    assert bounded["state"] == "COMPLETED"
