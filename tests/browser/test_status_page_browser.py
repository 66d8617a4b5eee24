"""The admin listener's status page in a real browser: headless Chromium (Debian's
``chromium``, installed when missing) loads it from a running ``pixring up``, and the test
reads what a person sees: a row per member, all up; then, after a renderer is killed, that
member shown as down with its failed probe. The screenshot goes to docs/images/status-page.png,
the one the manual shows.

Run with ``make test-browser`` (not part of ``make test``)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from loadtest.tools import ensure_tools
from tests.e2e.proctree import descendants

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "status-page.png"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Rows(HTMLParser):
    """The members table as a person reads it: each row's cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cells: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._cells = []
        elif tag == "td" and self._cells is not None:
            self._cells.append("")

    def handle_endtag(self, tag):
        if tag == "tr" and self._cells:
            self.rows.append(self._cells)
            self._cells = None

    def handle_data(self, data):
        if self._cells:
            self._cells[-1] += data


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start. No
    # --virtual-time-budget: with the page's meta refresh it never ends (Chromium 156).
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, timeout=timeout)


def member_rows(url: str) -> dict[str, list[str]]:
    done = chromium("--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Rows()
    parser.feed(done.stdout)
    return {row[0].strip(): row for row in parser.rows if row and re.fullmatch(r"r\d+", row[0].strip())}


@pytest.fixture(scope="module")
def browser() -> None:
    ensure_tools(["chromium"], log=print)


@pytest.mark.timeout(300)
def test_a_person_sees_every_member_and_then_the_one_that_died(browser, tmp_path):
    port, admin = free_port(), free_port()
    log = open(tmp_path / "up.log", "w")
    up = subprocess.Popen([sys.executable, "-m", "pixring.cli", "up", "--renderers", "3", "--port", str(port),
                           "--admin-port", str(admin), "--workers", "1", "--origin", str(tmp_path / "samples"),
                           "--log-dir", str(tmp_path / "logs")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        for width in range(100, 160):  # some traffic, so the rates and counts are not all zero
            urllib.request.urlopen(f"http://127.0.0.1:{port}/photos/small-640x427.jpg?w={width}", timeout=10).read()
        page = f"http://127.0.0.1:{admin}/"
        time.sleep(1.5)  # workers report once a second
        chromium("--dump-dom", page)  # a first load, so the next has rates to show
        rows = member_rows(page)
        assert sorted(rows) == ["r1", "r2", "r3"]
        assert all(row[2].strip() == "up" for row in rows.values()), rows

        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as response:
            status = json.loads(response.read())
        victim_port = next(int(m["address"].rsplit(":", 1)[1]) for m in status["members"] if m["id"] == "r2")
        for pid in descendants(up.pid):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"--listen" in argv and argv[argv.index(b"--listen") + 1].endswith(f":{victim_port}".encode()):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while member_rows(page)["r2"][2].strip() != "down":
            assert time.monotonic() < deadline, member_rows(page)
            time.sleep(0.5)
        rows = member_rows(page)
        assert rows["r1"][2].strip() == "up" and rows["r3"][2].strip() == "up"
        assert "GET /healthz" in rows["r2"][13]  # the last probe says what failed

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shot = chromium(f"--screenshot={SCREENSHOT}", "--window-size=1500,1000", page)
        assert shot.returncode == 0 and SCREENSHOT.stat().st_size > 10_000, shot.stderr[-2000:]
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()
