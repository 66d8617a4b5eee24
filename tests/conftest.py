"""Session checks: the request path under test is the source in the tree; the header says
how it runs and whether the imgix catalogue is there to check the schema against."""

from __future__ import annotations

import os

import pytest

from balancer import compile as hot_path
from tests.reference import catalogue_status


# The headless-browser checks run with `make test-browser` only: they install Chromium when it
# is missing, which `make test` should not do on every machine.
collect_ignore_glob = [] if os.environ.get("PIXRING_BROWSER_TESTS") else ["browser/*"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["request path: " + hot_path.describe(), catalogue_status()]


# Every renderer a test starts serves its metrics on a free port: the default admin
# listener (127.0.0.1:9100) would be shared by the renderers of one test, and of the other
# test runs on this machine. A test that needs the address gives --admin itself.
os.environ.setdefault("PIXRING_RENDERER_ADMIN", "127.0.0.1:0")


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = hot_path.stale()
    if stale:
        pytest.exit(f"{', '.join(stale)}: edited or moved after compiling, so a compiled "
                    "module would be tested instead of the source; run `make compile` "
                    "(or `python -m balancer.compile --clean`)", returncode=2)
