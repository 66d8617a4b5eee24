"""The renderer as a real process: ready line, real worker pool, signals, exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.notifysocket import NotifySocket
from tests.e2e.proctree import alive, descendants

from renderer.samples import Sample, generate

pytestmark = pytest.mark.e2e

LAUNCH = (
    "import argparse, renderer.cli as c; p = argparse.ArgumentParser(); c.add_arguments(p); "
    "raise SystemExit(c.run(p.parse_args()))"
)
START_TIMEOUT_S = 30


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    root.mkdir()
    (root / "photo.jpg").write_bytes(generate(Sample("photo.jpg", 300, 200, seed=41)))
    (root / "square.jpg").write_bytes(generate(Sample("square.jpg", 1000, 1000, seed=42)))
    return root


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ready_url(proc: subprocess.Popen[str]) -> str:
    """The base URL from the ready line; fails if the process exits or stays silent."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_S)
    assert lines and lines[0], f"no ready line; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"  # type: ignore[union-attr]
    prefix = "pixring renderer listening on "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):].strip()


@pytest.fixture
def renderer(origin: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = start("--listen", "127.0.0.1:0", "--origin", str(origin), "--render-workers", "1")
    try:
        yield proc, ready_url(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_systemd_hears_ready_once_it_listens_and_stopping_on_sigterm(origin: Path, tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--listen", "127.0.0.1:0", "--origin", str(origin), "--render-workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NOTIFY_SOCKET": notify.path},
    )
    try:
        ready = notify.hear()
        assert ready[0] == "READY=1" and ready[1].startswith("STATUS=listening on http://127.0.0.1:")
        base = ready[1].removeprefix("STATUS=listening on ")
        assert get(base + "/healthz")[0] == 200  # ready means it answers
        proc.send_signal(signal.SIGTERM)
        assert notify.hear()[0] == "STOPPING=1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    print("heard: " + notify.describe())
    assert notify.senders() == {proc.pid}, "a render worker spoke to the service manager"


def test_serves_and_stops_cleanly_on_sigterm(renderer: tuple[subprocess.Popen[str], str]) -> None:
    proc, base = renderer
    status, headers, body = get(f"{base}/photo.jpg?w=100&h=100&fit=crop&fm=webp")
    assert (status, headers["Content-Type"], body[8:12]) == (200, "image/webp", b"WEBP")
    assert get(f"{base}/healthz")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    events = [json.loads(line)["event"] for line in proc.stderr.read().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
    assert events[0] == "start" and events[-1] == "stopped" and "access" in events


class GatedOrigin:
    """An HTTP origin that holds its first request for ``name`` until ``release`` is set, so
    a test knows a renderer request is in flight for as long as it needs."""

    def __init__(self, root: Path, name: str) -> None:
        import functools
        import http.server

        self.asked = threading.Event()
        self.release = threading.Event()
        gate = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def send_head(self):  # type: ignore[no-untyped-def]
                if self.path.lstrip("/") == name and not gate.asked.is_set():
                    gate.asked.set()
                    gate.release.wait(30)
                return super().send_head()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_request_in_flight_when_sigterm_comes_is_answered_before_the_renderer_exits(
        origin: Path, tmp_path: Path) -> None:
    # No race to win: the origin holds the request until systemd has heard STOPPING=1,
    # so SIGTERM has certainly been taken while the request waits; its render runs after.
    gated = GatedOrigin(origin, "square.jpg")
    notify = NotifySocket(tmp_path / "notify")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--listen", "127.0.0.1:0", "--origin", gated.url, "--render-workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NOTIFY_SOCKET": notify.path},
    )
    try:
        base = ready_url(proc)
        assert notify.hear()[0] == "READY=1"
        result: dict[str, tuple[int, dict[str, str], bytes]] = {}
        slow = threading.Thread(target=lambda: result.setdefault("r", get(f"{base}/square.jpg?w=200&fm=png")))
        slow.start()
        assert gated.asked.wait(30), "the renderer never asked the origin"
        proc.send_signal(signal.SIGTERM)
        assert notify.hear()[0] == "STOPPING=1"
        gated.release.set()
        slow.join(60)
        assert result["r"][0] == 200 and result["r"][1]["Content-Type"] == "image/png"
        assert proc.wait(30) == 0
        events = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
        names = [event["event"] for event in events]
        assert names.index("stopping") < names.index("access") < names.index("stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        gated.close()
        notify.close()


def test_sighup_applies_cache_sizes_and_limits_and_names_what_needs_a_restart(origin: Path, tmp_path: Path) -> None:
    config = tmp_path / "renderer.toml"
    config.write_text(f'listen = "127.0.0.1:0"\norigin = "{origin}"\nrender_workers = 1\ncache_bytes = "16M"\n')
    notify = NotifySocket(tmp_path / "notify")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--config", str(config), "--max-output-pixels", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NOTIFY_SOCKET": notify.path},
    )

    def reload() -> None:
        proc.send_signal(signal.SIGHUP)
        assert notify.hear()[0] == "RELOADING=1"
        assert notify.hear()[0] == "READY=1"

    try:
        base = ready_url(proc)
        assert notify.hear()[0] == "READY=1"
        assert get(f"{base}/photo.jpg?w=100&fm=png")[1]["X-Render-Cache"] == "miss"
        assert get(f"{base}/photo.jpg?w=100&fm=png")[1]["X-Render-Cache"] == "hit"
        # cache_bytes 0 empties the memory cache at once; a new listen waits for a restart.
        config.write_text(f'listen = "127.0.0.1:1"\norigin = "{origin}"\nrender_workers = 1\ncache_bytes = 0\n'
                          'cache_control = "max-age=60"\nmax_output_pixels = 10\n')
        reload()
        status, headers, _ = get(f"{base}/photo.jpg?w=100&fm=png")
        assert (status, headers["X-Render-Cache"], headers["Cache-Control"]) == (200, "miss", "max-age=60")
        # The flag given at start still beats the file (max_output_pixels = 10 would refuse this).
        config.write_text("render_queue = -1\n")  # not a usable file: refused, nothing changes
        reload()
        assert get(f"{base}/photo.jpg?w=100&fm=png")[1]["Cache-Control"] == "max-age=60"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        events = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
        (applied,) = [event for event in events if event["event"] == "reload"]
        assert sorted(applied["applied"]) == ["cache_bytes", "cache_control"]
        assert sorted(applied["needs_restart"]) == ["listen"]
        (refused,) = [event for event in events if event["event"] == "reload_refused"]
        assert "render_queue" in refused["error"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


def test_port_in_use_exits_1(origin: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = start("--listen", f"127.0.0.1:{port}", "--origin", str(origin), "--render-workers", "1")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "already in use" in err and f"127.0.0.1:{port}" in err
    assert "listening" not in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--render-workers", "0"], "at least 1"),
        (["--listen", "nowhere"], "HOST:PORT"),
        (["--cache-bytes", "lots"], "size in bytes"),
        (["--origin", "/nonexistent/pixring-origin"], "not a directory"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    proc = start(*args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert message in err






def test_workers_do_not_outlive_a_killed_renderer(origin: Path) -> None:
    proc = start("--listen", "127.0.0.1:0", "--origin", str(origin), "--render-workers", "2")
    try:
        ready_url(proc)
        family = descendants(proc.pid)
        assert len(family) >= 3  # fork server, resource tracker, workers
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30  # a hang guard, not a performance bound
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in family if alive(pid)]


def test_http_origin_and_disk_cache_across_a_restart(origin: Path, tmp_path: Path) -> None:
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(origin))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    disk = tmp_path / "renders"
    args = ("--listen", "127.0.0.1:0", "--origin", f"http://127.0.0.1:{server.server_address[1]}/",
            "--disk-cache", str(disk), "--render-workers", "1")
    try:
        bodies = []
        for expected in ("miss", "hit-disk"):  # the second process finds the first one's render
            proc = start(*args)
            try:
                status, headers, body = get(f"{ready_url(proc)}/photo.jpg?w=50&fm=png")
                assert (status, headers["X-Render-Cache"], headers["Content-Type"]) == (200, expected, "image/png")
                assert headers["Last-Modified"].endswith("GMT")  # the origin's, passed on
                bodies.append(body)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        assert bodies[0] == bodies[1]
        assert list(disk.glob("*/*.pxr"))
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "args,message",
    [(["--origin", "ftp://example.com/"], "http:// and https://"), (["--render-timeout", "0"], "positive"),
     (["--origin", "http://example.com/?a=1"], "no query")],
)
def test_bad_new_options_exit_2(args: list[str], message: str) -> None:
    proc = start(*args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert message in err


def test_python_m_renderer_is_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "renderer", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "--disk-cache" in done.stdout and "--render-timeout" in done.stdout and "DIR|URL" in done.stdout


def test_accepts_every_head_the_balancer_forwards(renderer: tuple[subprocess.Popen[str], str]) -> None:
    """The balancer passes heads of up to 16 KiB with targets of up to 8 KiB (its 431 and
    414 limits); the renderer must not refuse one of those with aiohttp's smaller limits."""
    _, base = renderer
    long_target = f"{base}/photo.jpg?w=100&fm=png&" + "&".join(f"u{i}=x" for i in range(1150))
    fields = {f"X-F{i}": "v" for i in range(300)} | {"X-Big": "b" * 12000}
    request = urllib.request.Request(long_target, headers=fields)
    assert 8000 < len(long_target) - len(base) < 8192
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and response.read()[1:4] == b"PNG"
