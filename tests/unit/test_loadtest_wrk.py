"""The wrk driver: the result line of replay.lua, and the command line."""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path

import pytest

from loadtest import wrk
from loadtest.targets import write_targets

LINE = ('PIXRING-WRK {"requests": 400000, "duration_us": 8000000, "bytes": 900000000, "p50_us": 1100.5, '
        '"p90_us": 1800.0, "p99_us": 2900.25, "max_us": 15000.0, "connect_errors": 1, "read_errors": 2, '
        '"write_errors": 3, "timeouts": 4, "bad_status": 5}')
HUMAN = "Running 8s test @ http://127.0.0.1:8080/\n  1 threads and 64 connections\nRequests/sec:  50000.00\n"


def test_parse_reads_the_marker_line_among_wrks_own_output():
    result = wrk.parse_result(HUMAN + LINE + "\n")
    assert result.requests == 400_000
    assert result.rps == pytest.approx(50_000.0)
    assert result.p99_us == pytest.approx(2900.25)
    assert result.socket_errors == 1 + 2 + 3 + 4
    assert result.failed == 1 + 2 + 3 + 4 + 5


def test_parse_without_the_line_quotes_what_wrk_printed():
    with pytest.raises(wrk.WrkError, match="(?s)no PIXRING-WRK line.*unable to connect"):
        wrk.parse_result(HUMAN, "unable to connect to 127.0.0.1:1 Connection refused")


def test_parse_refuses_two_lines():
    with pytest.raises(wrk.WrkError, match="2 PIXRING-WRK"):
        wrk.parse_result(LINE + "\n" + LINE)


def test_parse_refuses_broken_json_and_names_missing_fields():
    with pytest.raises(wrk.WrkError, match="unreadable"):
        wrk.parse_result("PIXRING-WRK {requests: 1")
    with pytest.raises(wrk.WrkError, match="lacks p99_us"):
        wrk.parse_result(LINE.replace('"p99_us"', '"p98_us"'))


def test_parse_refuses_a_run_without_requests():
    with pytest.raises(wrk.WrkError, match="no request"):
        wrk.parse_result(LINE.replace('"requests": 400000', '"requests": 0'))


def test_every_parsed_field_is_printed_by_the_lua_script():
    script = wrk.REPLAY_SCRIPT.read_text()
    for name in wrk._FIELDS:
        assert f'"{name}"' in script, name


def test_command_pins_and_passes_the_targets_file_to_the_script(tmp_path):
    argv = wrk.command("http://127.0.0.1:9/", connections=64, seconds=8, targets_file=tmp_path / "t", cpu=1)
    assert argv[:3] == ["taskset", "-c", "1"]
    assert "-c64" in argv and "-d8s" in argv and "-t1" in argv
    assert argv[-2:] == ["--", str(tmp_path / "t")]
    assert wrk.command("http://x/", connections=1, seconds=1, targets_file=tmp_path, cpu=None)[0] == "wrk"


@pytest.mark.parametrize("connections, seconds", [(0, 8), (8, 0), (8, 1.5)])
def test_command_refuses_what_wrk_cannot_do(tmp_path, connections, seconds):
    with pytest.raises(ValueError):
        wrk.command("http://x/", connections=connections, seconds=seconds, targets_file=tmp_path, cpu=None)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_GET(self):
        self.seen.append(self.path)
        body = b"x" * 10
        self.send_response(200 if self.path != "/bad" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # wrk resets its connections when the run ends; that is not a test failure


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_real_wrk_replays_the_targets_in_order_and_counts_bad_status(tmp_path: Path):
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        targets = write_targets(tmp_path / "targets.txt", ["/a?w=1", "/bad", "/c"])
        argv = wrk.command(f"http://127.0.0.1:{server.server_port}/", connections=1, seconds=1,
                           targets_file=targets, cpu=None)
        out, err = wrk.start(argv).communicate(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    result = wrk.parse_result(out, err)
    # wrk calls request() once to check the script before the run, so the replay may start
    # anywhere in the cycle; what matters is that it follows the file's order round and round.
    cycle = ["/a?w=1", "/bad", "/c"]
    seen = _Handler.seen
    assert len(seen) >= 4
    assert all(cycle[(cycle.index(a) + 1) % 3] == b for a, b in zip(seen, seen[1:]))
    assert result.bad_status >= 1
    assert result.requests >= 3
