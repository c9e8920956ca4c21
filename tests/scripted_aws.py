"""A stand-in AWS endpoint answering JSON-protocol calls from a script: real HTTP for botocore,
for the answers moto never gives (throttling, refusals, outages, other writers)."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, bytes]
"""An HTTP status and the body sent with it."""


def error_answer(status: int, error_type: str, message: str = "Rate exceeded") -> Answer:
    """An AWS JSON-protocol error, as botocore parses it into a ClientError."""
    return status, json.dumps({"__type": error_type, "message": message}).encode()


def json_answer(payload: dict[str, Any], status: int = 200) -> Answer:
    return status, json.dumps(payload).encode()


class ScriptedAws(ThreadingHTTPServer):
    """Answers each call with the next answer of its script; the last one repeats."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self._script: list[Answer] = [json_answer({})]
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def play(self, *answers: Answer) -> None:
        with self._lock:
            self._script = list(answers)

    def next_answer(self) -> Answer:
        with self._lock:
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]


class _ScriptedHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, ScriptedAws)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, body = server.next_answer()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def scripted_aws() -> Iterator[ScriptedAws]:
    server = ScriptedAws()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
