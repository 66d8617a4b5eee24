"""`loadtest.skeleton`, the benchmark's measuring stick, as a real process.

Its numbers are only worth comparing if it answers correctly; this caught it sending a
stale head: an answer whose client had gone left its head on the pooled connection, and
the next answer on that connection went out with it in front (wrk counted the garbled
answers as read errors in the run after a run that ended with requests in flight).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httptools
import pytest

from loadtest.backends import free_port

pytestmark = pytest.mark.e2e


class _Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.3)  # the client is gone by the time this answer arrives
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _parse(data: bytes) -> list[tuple[int, bytes]]:
    """The answers in ``data`` as (status, body); httptools raises on anything malformed."""
    answers: list[tuple[int, bytes]] = []

    class Sink:
        body = b""

        def on_body(self, chunk: bytes) -> None:
            self.body += chunk

        def on_message_complete(self) -> None:
            answers.append((parser.get_status_code(), self.body))
            self.body = b""

    parser = httptools.HttpResponseParser(Sink())
    parser.feed_data(data)
    return answers


def _get(port: int, target: bytes, *, wait: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        if not wait:
            return b""
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not data.endswith(target):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_an_answer_after_a_client_left_mid_request_is_well_formed():
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.skeleton", str(port), str(backend.server_port)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "skeleton did not start"
                time.sleep(0.05)
        _get(port, b"/slow", wait=False)  # leaves before the answer: its body is dropped
        time.sleep(0.6)  # the answer has come and its connection is back in the pool
        answers = _parse(_get(port, b"/next"))
        assert answers == [(200, b"/next")]
    finally:
        proc.kill()
        proc.wait()
        backend.shutdown()
