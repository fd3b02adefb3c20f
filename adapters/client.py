"""The Tech Adapter API 2.2.0 client: every operation, synchronous (200) or token-and-poll (202).

Every call ends in a result object; no exception reaches the caller. Only what is safe to repeat is
retried: connections that were never established and 502/503/504 answers (the adapter never accepted
the request), and status polls, which are reads.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, merge_cookies
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.response import HTTPResponse

from adapters.model import AdapterResult, JsonBody, Outcome, Request, ReverseProvisioningResult, ValidationOutcome

RETRYABLE_STATUSES = frozenset({502, 503, 504})
NO_REVERSE_PROVISIONING = frozenset({404, 405, 501})  # answers of an adapter without reverse provisioning
USUAL_PREFIX = "/datamesh.specificprovisioner"
EXCERPT_LENGTH = 200
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # of one answer's body, decoded: past it the call fails, the rest unread
_READ_CHUNK = 256 * 1024
POOL_CONNECTIONS = 16  # kept-alive connections per adapter host and process: as many as a validation's calls in flight
POOL_HOSTS = 64  # adapter hosts (and CA bundles) whose connections a process keeps


class _Failed(Exception):
    """An operation that cannot complete, with the message a person will read."""

    def __init__(self, message: str, http_status: int | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.http_status, self.details = message, http_status, details or []


class TechAdapterClient:
    """One tech adapter, reached at base_url (usually ending in /datamesh.specificprovisioner)."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 600.0,
        *,
        request_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        poll_interval: float = 0.05,
        poll_max_interval: float = 2.0,
        session: requests.Session | None = None,
        ca_bundle: str | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.retries = retries
        self.backoff = backoff
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self.max_answer_bytes = max_answer_bytes
        # The client's own two sessions are made when first used (a validate call needs neither: see _send_json);
        # one client, one cookie jar, whichever connection it uses.
        self._sessions = (session, session) if session is not None else None
        self._cookies = session.cookies if session is not None else RequestsCookieJar()
        self._verify = ca_bundle or environment_ca_bundle() or True
        self._proxies = _environment_proxies(self.base_url, _proxy_variables())
        self._clock, self._sleep = clock, sleep

    @property
    def session(self) -> requests.Session:
        """The session of calls that must not be repeated: each opens its own connection."""
        return self._both_sessions()[0]

    @property
    def _repeatable(self) -> requests.Session:
        """The session of calls that are safe to repeat, over the process's kept-alive connections."""
        return self._both_sessions()[1]

    def _both_sessions(self) -> tuple[requests.Session, requests.Session]:
        if self._sessions is None:
            own, shared = (_session_for(self._verify, self._proxies, shared=kept) for kept in (False, True))
            own.cookies = shared.cookies = self._cookies
            self._sessions = (own, shared)
        return self._sessions

    # ------------------------------------------------------------------ operations

    def validate(self, request: Request) -> ValidationOutcome:
        """POST /v1/validate: whether the adapter accepts the provisioning request."""
        return self._validation(self._validate_v1, request)

    def validate_async(self, request: Request) -> ValidationOutcome:
        """POST /v2/validate, then poll its status until the validation result is there."""
        return self._validation(self._validate_v2, request)

    def provision(self, request: Request) -> AdapterResult:
        """POST /v1/provision and, on 202, poll /v1/provision/{token}/status."""
        return self._provisioning("/v1/provision", request)

    def unprovision(self, request: Request) -> AdapterResult:
        """POST /v1/unprovision; its token is polled on the provision status endpoint, as the API says."""
        return self._provisioning("/v1/unprovision", request)

    def update_acl(self, refs: list[str], provision_info: dict[str, Any]) -> AdapterResult:
        """POST /v1/updateacl for the identities in refs."""
        return self._provisioning("/v1/updateacl", {"refs": refs, "provisionInfo": provision_info})

    def reverse_provision(self, request: dict[str, Any]) -> ReverseProvisioningResult:
        """POST /v1/reverse-provisioning and, on 202, poll its status; the result carries the updates."""
        path = "/v1/reverse-provisioning"
        try:
            deadline = self._clock() + self.timeout
            response = self._post(path, request, deadline)
            if response.status_code == 202:
                token = _token(response, path)
                body = self._poll(f"{path}/{quote(token, safe='')}/status", deadline, token)
            elif response.status_code == 200:
                body = _json_object(response, path)
            elif response.status_code in NO_REVERSE_PROVISIONING:
                return ReverseProvisioningResult(
                    outcome=Outcome.FAILED, unsupported=True,
                    message=f"the tech adapter at {self.base_url} does not implement reverse provisioning ({path} "
                            f"answered HTTP {response.status_code})")
            else:
                raise self._error_from(response, path)
            return _reverse_result_from(body, response.status_code)
        except _Failed as failed:
            return ReverseProvisioningResult(outcome=Outcome.FAILED, message=failed.message, details=failed.details)
        except Exception as unexpected:  # the contract: nothing raises to the caller
            return ReverseProvisioningResult(outcome=Outcome.FAILED, message=f"unexpected client error: {unexpected!r}")

    # ------------------------------------------------------------------ plumbing

    def _validation(
        self, call: Callable[[Request, float], ValidationOutcome], request: Request
    ) -> ValidationOutcome:
        try:
            return call(request, self._clock() + self.timeout)
        except _Failed as failed:
            return _unreachable_validation(failed)
        except Exception as unexpected:  # the contract: nothing raises to the caller
            return ValidationOutcome(valid=False, message=f"validation could not run: {unexpected!r}",
                                     reachable=False, failed=True)

    def _validate_v1(self, request: Request, deadline: float) -> ValidationOutcome:
        response = self._post("/v1/validate", request, deadline, safe_to_repeat=True)  # a check changes nothing
        if response.status_code == 200:
            return _validation_from(_json_object(response, "/v1/validate"))
        refusal = _refusal(response)
        if refusal is not None:
            return refusal
        raise self._error_from(response, "/v1/validate")

    def _validate_v2(self, request: Request, deadline: float) -> ValidationOutcome:
        response = self._post("/v2/validate", request, deadline, safe_to_repeat=True)
        if response.status_code == 200:
            return _validation_from(_json_object(response, "/v2/validate"))
        if response.status_code != 202:
            refusal = _refusal(response)
            if refusal is not None:
                return refusal
            raise self._error_from(response, "/v2/validate")
        token = _token(response, "/v2/validate")
        status = self._poll(f"/v2/validate/{quote(token, safe='')}/status", deadline, token)
        if status.get("status") == "FAILED":
            return ValidationOutcome(valid=False, message="the adapter's validation task FAILED", failed=True,
                                     http_status=200)
        # 2.2.0 puts the result in info.publicInfo; older adapters in result.
        info = status.get("info")
        result = info.get("publicInfo") if isinstance(info, dict) else status.get("result")
        if not isinstance(result, dict):
            raise _Failed("the validation status has no result (expected info.publicInfo)", http_status=200)
        return _validation_from(result)

    def _provisioning(self, path: str, body: Request) -> AdapterResult:
        try:
            deadline = self._clock() + self.timeout
            response = self._post(path, body, deadline)
            if response.status_code == 202:
                token = _token(response, path)
                status = self._poll(f"/v1/provision/{quote(token, safe='')}/status", deadline, token)
                return _provisioning_result(status, 200)
            if response.status_code == 200:
                status = _json_object(response, path)
                if status.get("status") == "RUNNING":
                    raise _Failed(f"{path} answered 200 with status RUNNING but gave no token to poll",
                                  http_status=200)
                return _provisioning_result(status, 200)
            raise self._error_from(response, path)
        except _Failed as failed:
            return AdapterResult(outcome=Outcome.FAILED, message=failed.message, details=failed.details,
                                 http_status=failed.http_status)
        except Exception as unexpected:  # the contract: nothing raises to the caller
            return AdapterResult(outcome=Outcome.FAILED, message=f"unexpected client error: {unexpected!r}")

    def _post(self, path: str, body: Request, deadline: float, safe_to_repeat: bool = False) -> requests.Response:
        """POST, retrying only when the adapter cannot have accepted the request, or when repeating is harmless."""
        url = self.base_url + path
        content: dict[str, Any] = (
            {"data": body.data, "headers": {"Content-Type": "application/json"}}
            if isinstance(body, JsonBody) else {"json": body}
        )
        # What is safe to repeat goes over the process's kept-alive connections: a connection the adapter closed
        # while idle is retried like any broken one. The rest opens its own, as a provision must not be repeated.
        quick = safe_to_repeat and isinstance(body, JsonBody) and not self._given_session()
        session = None if quick else self._repeatable if safe_to_repeat else self.session
        attempt = 0
        while True:
            read_timeout = self._remaining(deadline, url)
            try:
                timeout = (min(5.0, read_timeout), read_timeout)
                if session is None:
                    assert isinstance(body, JsonBody)
                    response = self._send_json(url, body.data, timeout)
                else:
                    response = session.post(url, timeout=timeout, stream=True, **content)
                _read_body(response, url, self.max_answer_bytes)  # its errors are those requests raised reading it
            except requests.exceptions.SSLError as error:  # no request was sent, and retrying cannot help
                raise _Failed(_tls_failure(url, error)) from None
            except requests.ConnectionError as error:
                if error.args and isinstance(error.args[0], ReadTimeoutError):  # the body stalled: requests says so
                    raise _Failed(f"the tech adapter at {url} did not answer within {read_timeout:.3g} s") from None
                if not _never_connected(error) and not safe_to_repeat:
                    raise _Failed(f"the connection to the tech adapter at {url} broke after the request was "
                                  f"sent ({_reason(error)}); not retried, since the adapter may have acted on "
                                  "it") from None
                if attempt < self.retries and self._can_wait(deadline, self.backoff * 2**attempt):
                    self._sleep(self.backoff * 2**attempt)
                    attempt += 1
                    continue
                if not _never_connected(error):
                    raise _Failed(f"the connection to the tech adapter at {url} broke after the request was sent "
                                  f"({_reason(error)}), on each of {attempt + 1} attempts") from None
                raise _Failed(f"cannot connect to the tech adapter at {url} ({_reason(error)}) after "
                              f"{attempt + 1} attempt{'s' if attempt else ''}") from None
            except requests.Timeout:
                raise _Failed(f"the tech adapter at {url} did not answer within {read_timeout:.3g} s") from None
            except requests.RequestException as error:
                raise _Failed(f"cannot call the tech adapter at {url}: {_reason(error)}") from None
            if response.status_code in RETRYABLE_STATUSES and attempt < self.retries and self._can_wait(
                deadline, self.backoff * 2**attempt
            ):
                self._sleep(self.backoff * 2**attempt)
                attempt += 1
                continue
            return response

    def _given_session(self) -> bool:
        """Whether the caller gave the session: then every request goes through it, as it is."""
        return self._sessions is not None and self._sessions[0] is self._sessions[1]

    def _send_json(self, url: str, data: bytes, timeout: tuple[float, float]) -> requests.Response:
        """What the repeatable session's post(url, data=data, JSON content type, stream=True) does, with less work.

        The request is prepared from a per-URL template and handed to the shared transport directly: merging the
        session's settings, parsing the URL and making the client's sessions were a third of a validate call's CPU.
        The request is the same (headers in the same order, the client's cookies, redirects followed, proxies).
        """
        template = _json_post_template(url)  # raises what requests raises for a URL it cannot send to
        if template is None:  # credentials in the URL, or not HTTP(S): requests' own path
            return self._repeatable.post(url, data=data, headers={"Content-Type": "application/json"},
                                         timeout=timeout, stream=True)
        prepared = template.copy()
        prepared.prepare_cookies(merge_cookies(RequestsCookieJar(), self._cookies))
        prepared.prepare_body(data, None)
        proxies = dict(self._proxies)
        response = _shared_transport().send(prepared, stream=True, timeout=timeout, verify=self._verify, cert=None,
                                            proxies=proxies)
        extract_cookies_to_jar(self._cookies, prepared, response.raw)
        if response.is_redirect:
            history = [response, *self._repeatable.resolve_redirects(response, prepared, stream=True, timeout=timeout,
                                                                     verify=self._verify, cert=None, proxies=proxies)]
            response = history.pop()
            response.history = history
        return response

    def _poll(self, path: str, deadline: float, token: str) -> dict[str, Any]:
        """GET the status until it is no longer RUNNING; reads are always safe to retry until the deadline."""
        url = self.base_url + path
        interval = self.poll_interval
        last_problem = "still RUNNING"
        while True:
            read_timeout = self._remaining(deadline, url, token=token, last=last_problem)
            try:
                response = self._repeatable.get(url, timeout=(min(5.0, read_timeout), read_timeout), stream=True)
                _read_body(response, url, self.max_answer_bytes)
            except requests.RequestException as error:
                if self._clock() < deadline:  # a poll the deadline cut short says nothing new about the adapter
                    last_problem = f"last poll failed: {_reason(error)}"
            else:
                if response.status_code == 200:
                    status = _json_object(response, path)
                    if status.get("status") not in ("RUNNING", "COMPLETED", "FAILED"):
                        raise _Failed(f"{path} answered without a valid status: {_excerpt(response.text)}",
                                      http_status=200)
                    if status["status"] != "RUNNING":
                        return status
                    last_problem = "still RUNNING"
                elif response.status_code in RETRYABLE_STATUSES:
                    last_problem = f"last poll answered HTTP {response.status_code}"
                else:
                    raise self._error_from(response, path)
            self._sleep(min(interval, max(0.0, deadline - self._clock())))
            interval = min(interval * 1.5, self.poll_max_interval)

    def _remaining(self, deadline: float, url: str, token: str | None = None, last: str = "") -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            waiting = f" ({last}; token {token})" if token else ""
            raise _Failed(
                f"the tech adapter at {url} did not finish within {self.timeout:g} s{waiting}; the operation may "
                "still be running on the adapter. Raise this adapter's `timeout` in the server configuration if "
                "it needs longer."
            )
        return min(self.request_timeout, remaining)

    def _can_wait(self, deadline: float, seconds: float) -> bool:
        return self._clock() + seconds < deadline

    def _error_from(self, response: requests.Response, path: str) -> _Failed:
        """The failure a non-success answer means; a 404 names the full URL and, without the usual prefix, hints."""
        if response.status_code != 404:
            return _error_from(response, path)
        url = self.base_url + path
        hint = (f"is the URL right? adapters usually serve under {USUAL_PREFIX}"
                if not self.base_url.endswith(USUAL_PREFIX) else "the adapter does not serve this path")
        return _Failed(f"{url} answered HTTP 404 ({hint}): {_excerpt(response.text)}", http_status=404)


@functools.lru_cache(maxsize=256)
def _json_post_template(url: str) -> requests.PreparedRequest | None:
    """A JSON POST to url as a client's session prepares it, without body and cookies; None for a URL with
    credentials or not HTTP(S). Raises what requests raises for a URL it cannot prepare (exceptions are not cached)."""
    with requests.Session() as session:
        session.trust_env = False
        template = session.prepare_request(requests.Request("POST", url, headers={"Content-Type": "application/json"}))
    if "Authorization" in template.headers or not str(template.url).lower().startswith(("http://", "https://")):
        return None
    del template.headers["Content-Length"]  # prepare_body sets it, after any Cookie header, as requests orders them
    template._cookies = None  # each request gets the client's own
    return template


def _session_for(verify: str | bool, proxies: dict[str, str], *, shared: bool = False) -> requests.Session:
    """A session with the environment's proxy and CA bundle for this adapter resolved once, not on every request.

    requests re-reads the proxy variables and ~/.netrc for every request when trust_env is on: a third
    of the client's CPU per call. Adapters take no .netrc credentials; proxies from the environment still apply,
    and so do the certificate authorities (verify: ca_bundle, else the environment's, else certifi's). A shared
    session sends through the process's pool of kept-alive connections (see _shared_transport).
    """
    session = requests.Session()
    if shared:
        transport = _shared_transport()
        session.mount("https://", transport)
        session.mount("http://", transport)
    session.trust_env = False
    session.verify = verify
    session.proxies.update(proxies)
    return session


_PROXY_VARIABLES = (*(name for scheme in ("http", "https", "all", "no") for name in (f"{scheme}_proxy",
                                                                                     f"{scheme.upper()}_PROXY")),
                    "REQUEST_METHOD")  # under CGI, urllib ignores HTTP_PROXY


def _proxy_variables() -> tuple[str | None, ...]:
    """The environment's proxy settings that can apply to an adapter's URL: what _environment_proxies depends on."""
    return tuple(os.environ.get(name) for name in _PROXY_VARIABLES)


@functools.lru_cache(maxsize=256)
def _environment_proxies(base_url: str, variables: tuple[str | None, ...]) -> dict[str, str]:
    """The proxies the environment gives base_url, read once per URL and settings (reading them scans os.environ)."""
    del variables  # the cache key: the settings this answer was read under
    try:
        return dict(requests.utils.get_environ_proxies(base_url))
    except ValueError:
        return {}  # a malformed URL: the first request reports it


class _QuickAckHTTPConnection(HTTPConnection):
    """A connection that acknowledges the answer's first segment at once (see _quick_ack)."""

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's own
        """Read the answer, with delayed ACKs off for it."""
        _quick_ack(self.sock)
        return super().getresponse()


class _QuickAckHTTPSConnection(HTTPSConnection):
    """A TLS connection that acknowledges the answer's first segment at once (see _quick_ack)."""

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's own
        """Read the answer, with delayed ACKs off for it."""
        _quick_ack(self.sock)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _QuickAckHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _QuickAckHTTPSConnection


class _Transport(HTTPAdapter):
    """requests' adapter whose direct connections are _QuickAck ones (urllib3 already sets TCP_NODELAY)."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        """The pool manager, with the quick-ACK connection pools."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _quick_ack(sock: Any) -> None:
    """Turn delayed ACKs off (Linux) before an answer on a kept-alive connection is read.

    An adapter that writes its headers and its body in two writes without TCP_NODELAY (Python's http.server, werkzeug)
    holds the body back until the headers are acknowledged, and on a kept-alive connection the kernel delays that
    ACK by up to 40 ms: each reused call took 45 ms instead of 2. A new connection starts in quick-ACK mode, which is
    why this stall shows only with reuse.
    """
    option = getattr(socket, "TCP_QUICKACK", None)
    if sock is not None and option is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass  # not a TCP socket (a proxy tunnel's, a closed one): the answer is read as before


_TRANSPORT: dict[int, _Transport] = {}


def _shared_transport() -> _Transport:
    """This process's pool of kept-alive adapter connections (per host, port and TLS settings, as urllib3 keys them).

    A validation's calls (16 in flight) and later deployments' reuse them instead of opening a connection per call.
    Keyed by process id: a forked process opens its own.
    """
    pid = os.getpid()
    transport = _TRANSPORT.get(pid)
    if transport is None:  # no lock (a forked child could inherit it held): setdefault keeps one of two made at once
        for other in [key for key in _TRANSPORT if key != pid]:
            _TRANSPORT.pop(other, None)
        transport = _TRANSPORT.setdefault(pid, _Transport(pool_connections=POOL_HOSTS, pool_maxsize=POOL_CONNECTIONS))
    return transport


def environment_ca_bundle() -> str | None:
    """The CA bundle the environment names, as requests reads it with trust_env (then OpenSSL's SSL_CERT_FILE)."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(variable):
            return os.environ[variable]
    return None


def _tls_failure(url: str, error: requests.exceptions.SSLError) -> str:
    found = re.search(r"certificate verify failed: ([^(')]+)", str(error))
    if found:
        return (f"cannot connect to the tech adapter at {url}: its TLS certificate could not be verified "
                f"({found.group(1).strip()}); if a company certificate authority signed it, give that authority as "
                "this adapter's `ca_bundle` in the server configuration, or in REQUESTS_CA_BUNDLE")
    return f"cannot connect to the tech adapter at {url}: the TLS handshake failed ({_reason(error)})"


# ---------------------------------------------------------------------- answers


def _read_body(response: requests.Response, url: str, limit: int) -> None:
    """Read a streamed answer's body into the response, as requests does, but fail past limit bytes, unread."""
    declared = response.headers.get("Content-Length", "")
    chunks, size = [], 0
    if not (declared.isdigit() and int(declared) > limit):
        for chunk in response.iter_content(_READ_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
        else:
            response._content = b"".join(chunks)  # where requests keeps a body it read: .json() and .text use it
            return
    response.close()  # the rest stays unread: the connection is not reused
    raise _Failed(f"the tech adapter at {url} answered HTTP {response.status_code} with a body over "
                  f"{_size_text(limit)}, more than meshbot reads of one answer; it was not read",
                  http_status=response.status_code)


def _size_text(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size % (1024 * 1024) == 0 else f"{size} bytes"


def _never_connected(error: requests.ConnectionError) -> bool:
    """Whether the request never left: a refused or timed-out connection, not one that broke later."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _reason(error: Exception) -> str:
    text = str(error)
    for needle, reason in (("Connection refused", "connection refused"), ("Name or service not known", "unknown host"),
                           ("NameResolutionError", "unknown host"), ("timed out", "connection timed out"),
                           ("Connection reset", "connection reset"), ("RemoteDisconnected", "connection closed")):
        if needle in text:
            return reason
    return text.rsplit(": ", 1)[-1][:EXCERPT_LENGTH]


def _excerpt(text: str) -> str:
    collapsed = " ".join(text.split())
    if not collapsed:
        return "(empty body)"
    return repr(collapsed[:EXCERPT_LENGTH] + ("…" if len(collapsed) > EXCERPT_LENGTH else ""))


def _json_object(response: requests.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise _Failed(f"{path} answered HTTP {response.status_code} with a body that is not JSON: "
                      f"{_excerpt(response.text)}", http_status=response.status_code) from None
    if not isinstance(body, dict):
        raise _Failed(f"{path} answered HTTP {response.status_code} with JSON that is not an object: "
                      f"{_excerpt(response.text)}", http_status=response.status_code)
    return body


def _token(response: requests.Response, path: str) -> str:
    """The task token of a 202: a JSON string, plain text, or (leniently) an object with `token`."""
    text = response.text.strip()
    token: Any = text
    try:
        token = json.loads(text)
    except ValueError:
        pass
    if isinstance(token, dict):
        token = token.get("token")
    elif isinstance(token, int | float) and not isinstance(token, bool):  # a plain-text token of digits
        token = text
    if not isinstance(token, str) or not token.strip() or any(char.isspace() for char in token.strip()):
        raise _Failed(f"{path} answered 202 without a usable task token: {_excerpt(response.text)}", http_status=202)
    return token.strip()


def _error_from(response: requests.Response, path: str) -> _Failed:
    """The failure a non-success answer means: RequestValidationError, SystemError, or anything else."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if status == 400 and isinstance(body, dict):
        return _Failed(_user_message(body, "the adapter refused the request"), http_status=400,
                       details=_error_details(body))
    if status == 500 and isinstance(body, dict):
        message = _user_message(body, "system error")
        return _Failed(f"the tech adapter reported a system error: {message}", http_status=500,
                       details=_error_details(body))
    fields = _request_errors(body) if status == 422 else []
    if fields:
        return _Failed(f"the tech adapter rejected meshbot's request itself ({path} answered HTTP 422: meshbot and "
                       f"the adapter disagree on the Tech Adapter API): {'; '.join(fields)}", http_status=422,
                       details=[f"field: {field}" for field in fields])
    return _Failed(f"{path} answered HTTP {status}: {_excerpt(response.text)}", http_status=status)


def _request_errors(body: Any) -> list[str]:
    """FastAPI's 422 `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}` as `body -> descriptor: msg` lines."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail.strip():
        return [" ".join(detail.split())]
    if not isinstance(detail, list):
        return []
    fields = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc")
        where = " -> ".join(str(part) for part in loc) if isinstance(loc, list) else ""
        message = " ".join(str(item.get("msg") or item.get("type") or "invalid").split())
        fields.append(f"{where}: {message}" if where else message)
    return fields


def _refusal(response: requests.Response) -> ValidationOutcome | None:
    """A validate answered 400 with errors (RequestValidationError, or the scaffold's ValidationError): a no."""
    if response.status_code != 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = [error for error in _strings(body.get("errors")) if error.strip()]
    if not errors and isinstance(body.get("userMessage"), str) and body["userMessage"].strip():
        errors = [body["userMessage"].strip()]
    if not errors:
        return None
    return ValidationOutcome(valid=False, errors=errors, message="; ".join(errors), http_status=400)


def _user_message(body: dict[str, Any], fallback: str) -> str:
    for key in ("userMessage", "error"):
        if isinstance(body.get(key), str) and body[key].strip():
            return body[key].strip()
    errors = [error for error in _strings(body.get("errors")) if error.strip()]
    return "; ".join(errors) if errors else fallback


def _error_details(body: dict[str, Any]) -> list[str]:
    details: list[str] = []
    if isinstance(body.get("userMessage"), str):
        details.extend(f"error: {error}" for error in _strings(body.get("errors")))
    if isinstance(body.get("inputErrorField"), str):
        details.append(f"field: {body['inputErrorField']}")
    if isinstance(body.get("input"), str):
        details.append(f"input: {_excerpt(body['input'])}")
    more = body.get("moreInfo")
    if isinstance(more, dict):
        details.extend(f"problem: {problem}" for problem in _strings(more.get("problems")))
        details.extend(f"solution: {solution}" for solution in _strings(more.get("solutions")))
    return details


def _strings(value: Any) -> list[str]:
    """The items of a list as text, a lone string as one item, anything else as none."""
    if isinstance(value, list):
        return [str(item) for item in value]
    return [value] if isinstance(value, str) else []


def _logs(body: dict[str, Any]) -> list[dict[str, Any]]:
    logs = body.get("logs")
    return [entry for entry in logs if isinstance(entry, dict)] if isinstance(logs, list) else []


def _error_messages(logs: list[dict[str, Any]]) -> list[str]:
    """The messages of the ERROR log entries, in order."""
    return [
        str(entry["message"]) for entry in logs
        if str(entry.get("level", "")).upper() == "ERROR" and entry.get("message") not in (None, "")
    ]


def _provisioning_result(status: dict[str, Any], http_status: int) -> AdapterResult:
    state = status.get("status")
    info = status.get("info") if isinstance(status.get("info"), dict) else None
    logs = _logs(status)
    result = status.get("result") if isinstance(status.get("result"), str) else ""
    if state == "COMPLETED":
        return AdapterResult(outcome=Outcome.COMPLETED, message=result or "completed", info=info, logs=logs,
                             http_status=http_status)
    if state == "FAILED":
        errors = _error_messages(logs)
        message = result or (errors[-1] if errors else "the adapter reported FAILED without a message")
        return AdapterResult(outcome=Outcome.FAILED, message=message, info=info, logs=logs, http_status=http_status)
    raise _Failed(f"the adapter answered without a valid status: {_excerpt(json.dumps(status))}",
                  http_status=http_status)


def _validation_from(body: dict[str, Any]) -> ValidationOutcome:
    if not isinstance(body.get("valid"), bool):
        raise _Failed(f"the validation answer has no boolean 'valid': {_excerpt(json.dumps(body))}", http_status=200)
    error = body.get("error")
    errors = error.get("errors") if isinstance(error, dict) else None
    messages = [str(item) for item in errors] if isinstance(errors, list) else []
    return ValidationOutcome(valid=body["valid"], errors=messages,
                             message="valid" if body["valid"] else "; ".join(messages) or "not valid")


def _unreachable_validation(failed: _Failed) -> ValidationOutcome:
    return ValidationOutcome(valid=False, errors=failed.details, message=failed.message,
                             reachable=failed.http_status is not None, failed=True, http_status=failed.http_status)


def _reverse_result_from(body: dict[str, Any], http_status: int) -> ReverseProvisioningResult:
    state = body.get("status")
    logs = _logs(body)
    if state == "COMPLETED":
        updates = body.get("updates")
        if not isinstance(updates, dict):
            raise _Failed("the reverse provisioning completed without an 'updates' object", http_status=http_status)
        return ReverseProvisioningResult(outcome=Outcome.COMPLETED, updates=updates, logs=logs, message="completed")
    if state == "FAILED":
        errors = _error_messages(logs)
        return ReverseProvisioningResult(outcome=Outcome.FAILED, logs=logs,
                                         message=errors[-1] if errors else "the adapter reported FAILED")
    raise _Failed(f"the reverse provisioning answer has no valid status: {_excerpt(json.dumps(body))}",
                  http_status=http_status)
