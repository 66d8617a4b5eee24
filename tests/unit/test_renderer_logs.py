"""The renderer's access log: health probes are left out unless asked for, failures never."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from renderer.logs import JsonAccessLogger, QuietProbesAccessLogger


def request(path: str) -> SimpleNamespace:
    return SimpleNamespace(path=path, raw_path=path, method="GET", headers={}, remote="127.0.0.1")


def response(status: int) -> SimpleNamespace:
    return SimpleNamespace(status=status, body_length=10, headers={})


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_successful_probes_are_not_logged_by_default_but_failing_ones_are(capsys):
    quiet = QuietProbesAccessLogger(logging.getLogger("test"), "")
    quiet.log(request("/healthz"), response(200), 0.001)
    quiet.log(request("/photos/a.jpg"), response(200), 0.02)
    quiet.log(request("/healthz"), response(503), 0.001)
    logged = lines(capsys)
    assert [(line["target"], line["status"]) for line in logged] == [("/photos/a.jpg", 200), ("/healthz", 503)]


def test_log_probes_logs_every_request(capsys):
    every = JsonAccessLogger(logging.getLogger("test"), "")
    every.log(request("/healthz"), response(200), 0.001)
    assert [line["target"] for line in lines(capsys)] == ["/healthz"]
