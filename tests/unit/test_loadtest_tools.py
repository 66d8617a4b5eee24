"""Which Debian packages the benchmark installs."""

from __future__ import annotations

import pytest

from loadtest.tools import missing


def test_only_missing_programs_are_installed_once_each():
    present = {"nginx"}
    which = lambda program: f"/usr/bin/{program}" if program in present else None  # noqa: E731
    assert missing(["nginx", "haproxy", "wrk", "taskset"], which) == ["haproxy", "wrk", "util-linux"]
    assert missing(["nginx"], which) == []


def test_unknown_program_is_an_error():
    with pytest.raises(ValueError, match="curl"):
        missing(["curl"], lambda program: None)


def test_without_install_missing_programs_are_refused_by_package_name(monkeypatch):
    from loadtest.tools import ToolsError, require

    monkeypatch.setenv("PATH", "/nonexistent")  # nothing is on PATH
    with pytest.raises(ToolsError, match=r"missing packages nginx, linux-perf \(--no-install given\)"):
        require(["nginx", "perf"], install=False)
    require([], install=False)  # nothing asked, nothing missing
