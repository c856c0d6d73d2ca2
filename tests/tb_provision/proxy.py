"""A scripted HTTP proxy in front of the ThingsBoard stand-in: it forwards every request
(so the stand-in still checks it against the spec) except those a fault answers itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


@dataclass
class Fault:
    """Answer ``status`` to the matching requests after letting ``skip`` of them through,
    ``times`` times (0: for ever)."""

    method: str
    path: str
    status: int
    skip: int = 0
    times: int = 1
    message: str = "scripted failure"
    seen: int = 0
    fired: int = 0

    def fires(self, method: str, path: str) -> bool:
        if method != self.method or self.path not in path:
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times and self.fired >= self.times):
            return False
        self.fired += 1
        return True

    def body(self) -> bytes:
        codes = {400: 31, 401: 10, 429: 33}
        return json.dumps(
            {
                "status": self.status,
                "message": self.message,
                "errorCode": codes.get(self.status, 2),
                "timestamp": 0,
            }
        ).encode()


@dataclass
class Proxy:
    url: str
    faults: list[Fault]
    log: list[tuple[str, str, int]] = field(default_factory=list)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.log if m == method and path in p)


@contextmanager
def scripted_proxy(target: str, faults: list[Fault]) -> Iterator[Proxy]:
    lock = threading.Lock()
    proxy = Proxy("", faults)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            del format, args

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with lock:
                fault = next((f for f in faults if f.fires(self.command, self.path)), None)
            if fault is not None:
                payload, status = fault.body(), fault.status
                content_type = "application/json"
            else:
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                answer = requests.request(
                    self.command, target + self.path, headers=headers, data=body, timeout=120
                )
                payload, status = answer.content, answer.status_code
                content_type = answer.headers.get("Content-Type", "application/json")
            with lock:
                proxy.log.append((self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PUT = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
