"""Pausing the cyclic garbage collector around assembly and evaluation."""

import gc

import pytest

from bot.descriptor.collector import collector_paused


@pytest.fixture(autouse=True)
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_on_again_after():
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_on_again_after_an_error():
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_only_the_outer_pause_turns_the_collector_back_on():
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause did not turn it on under the outer one
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_assembly_and_evaluation_leave_the_collector_on(tmp_path):
    from policies.engine import evaluate
    from policies.loader import load_policies
    from tests.builders import component, descriptor_of

    descriptor = descriptor_of({"raw": component("raw", "storage")})
    evaluate(descriptor, load_policies())
    assert gc.isenabled()
