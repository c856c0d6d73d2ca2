"""module_utils/emqx_api.py against a scripted HTTP server: retries, errors, paging."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_source

MODULE_UTILS = Path(__file__).resolve().parents[2] / "module_utils" / "emqx_api.py"


emqx_api = load_source("module_utils/emqx_api.py", "emqx_api_under_test")


class Script:
    """Answers queued (status, body) pairs and records what it was sent."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = []
        self.seen: list[dict[str, Any]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.seen_entry = {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "type": self.headers.get("Content-Type"),
            }
            script.seen.append(self.seen_entry)
            status, body = script.answers.pop(0)
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()


def client(url: str) -> Any:
    return emqx_api.EmqxClient(url, "key", "secret", sleep=lambda _s: None)


def test_retries_5xx_and_429_then_succeeds(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, None), (429, None), (200, {"ok": True})]
    api = client(url)
    assert api.request("GET", "/nodes") == (200, {"ok": True})
    assert api.requests == 3
    assert script.seen[0]["path"] == "/api/v5/nodes"
    assert script.seen[0]["auth"] == "Basic a2V5OnNlY3JldA=="


def test_gives_up_after_the_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(500, {"code": "INTERNAL_ERROR", "message": "boom"})] * 5
    with pytest.raises(emqx_api.EmqxError) as caught:
        client(url).request("GET", "/nodes")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        500,
        "INTERNAL_ERROR",
        "boom",
    )


def test_client_error_is_not_retried_and_carries_emqx_code(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(401, {"code": "BAD_API_KEY_OR_SECRET", "message": "Check api_key"})]
    api = client(url)
    with pytest.raises(emqx_api.EmqxError, match="BAD_API_KEY_OR_SECRET"):
        api.request("GET", "/nodes")
    assert api.requests == 1


def test_connection_errors_are_retried_with_capped_backoff() -> None:
    waits: list[float] = []
    api = emqx_api.EmqxClient(
        "http://127.0.0.1:9", "k", "s", retries=6, backoff=1, max_backoff=4, sleep=waits.append
    )
    with pytest.raises(emqx_api.EmqxError) as caught:
        api.request("GET", "/nodes")
    assert caught.value.code == "CONNECTION_ERROR"
    assert waits == [1, 2, 4, 4, 4, 4]


def test_get_all_pages_until_hasnext_is_false(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [
        (200, {"data": [{"n": 1}], "meta": {"hasnext": True}}),
        (200, {"data": [{"n": 2}], "meta": {"hasnext": False}}),
    ]
    assert [item["n"] for item in client(url).get_all("/x")] == [1, 2]
    assert "page=2&limit=10000" in script.seen[1]["path"]


def test_multipart_upload(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(200, {"total": 1})]
    client(url).request(
        "POST",
        "/import",
        query={"type": "plain"},
        multipart=("filename", "u.json", b"[]", "application/json"),
    )
    assert script.seen[0]["type"].startswith("multipart/form-data; boundary=")
    assert script.seen[0]["path"] == "/api/v5/import?type=plain"
