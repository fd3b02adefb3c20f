"""A deployment's validation holds a few request bodies at a time, never one per component (issue 18)."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.engine.deployment import Operation
from bot.engine.runner import _Prepared, _validation_problems
from bot.engine.store import Deployment, PlannedTask, new_deployment_id

COMPONENTS = 200


class _Discarding(BaseHTTPRequestHandler):
    """Reads each body, keeps nothing, answers valid."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            remaining -= len(self.rfile.read(min(remaining, 65536)))
        payload = b'{"valid": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def discarding_adapter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discarding)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/datamesh.specificprovisioner"
    finally:
        server.shutdown()
        server.server_close()


def wide_deployment(url: str) -> Deployment:
    components = [{"id": f"urn:dmb:cmp:mem:wide:1:c{n:03d}", "kind": "storage", "name": f"c{n:03d}",
                   "description": f"component {n} of a wide data product, with some text to make it weigh",
                   "specific": {"tables": [{"name": f"t{n}_{k}", "columns": ["id", "name", "amount"]}
                                           for k in range(4)]}} for n in range(COMPONENTS)]
    descriptor = {"id": "urn:dmb:dp:mem:wide:1", "name": "wide", "version": "1.0.0", "components": components}
    tasks = [PlannedTask(component["id"], "storage", [], adapter_url=url, adapter_timeout=30) for component in
             components]
    return Deployment(id=new_deployment_id(), data_product=descriptor["id"], environment="development",
                      version="1.0.0", operation=Operation.DEPLOY, descriptor=descriptor, tasks=tasks, started_by="t")


def test_validating_200_components_holds_far_fewer_bodies_than_components():
    with discarding_adapter() as url:
        prepared = _Prepared(wide_deployment(url))
        from bot.engine.runner import _descriptor_text

        body_size = len(_descriptor_text(prepared).encode())
        tracemalloc.start()
        try:
            refusals, failures = _validation_problems(prepared)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (refusals, failures) == ([], [])
    # One body per component would be 200 bodies at least; 16 calls in flight, each with a few copies, stay below 80.
    assert peak < 80 * body_size, (peak, body_size)
