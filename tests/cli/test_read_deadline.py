"""The web worker's quieting of gevent's one benign warning, and only that one."""

from __future__ import annotations

import warnings

import pytest
from gevent.monkey import MonkeyPatchWarning

from bot.cli.read_deadline import BENIGN_LATE_SSL_PATCH

GEVENT_SAYS = ("Monkey-patching ssl after ssl has already been imported may lead to errors, including RecursionError "
               "on Python 3.6. It may also silently lead to incorrect behaviour on Python 3.7. Please monkey-patch "
               "earlier. See https://github.com/gevent/gevent/issues/1016. Modules that had direct imports (NOT "
               "patched): [{modules}]. ")
REDIS_ASYNCIO = "'redis.asyncio.connection (/venv/lib/python3.11/site-packages/redis/asyncio/connection.py)'"


def shown(message: str) -> list[str]:
    """What the filter lets through of one MonkeyPatchWarning with message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=BENIGN_LATE_SSL_PATCH, category=MonkeyPatchWarning)
        warnings.warn(message, MonkeyPatchWarning, stacklevel=1)
    return [str(warning.message) for warning in caught]


def test_the_warning_naming_only_redis_asyncio_is_not_shown():
    assert shown(GEVENT_SAYS.format(modules=REDIS_ASYNCIO)) == []


@pytest.mark.parametrize("modules", [
    f"{REDIS_ASYNCIO}, 'urllib3.util.ssl_ (/venv/lib/python3.11/site-packages/urllib3/util/ssl_.py)'",
    "'urllib3.util.ssl_ (/venv/lib/python3.11/site-packages/urllib3/util/ssl_.py)'",
    "'redis.asyncio.connectionpool (/x.py)'",
])
def test_any_other_module_left_unpatched_is_still_warned_about(modules):
    assert shown(GEVENT_SAYS.format(modules=modules)) == [GEVENT_SAYS.format(modules=modules)]
