"""The compiled request path (balancer/compile.py) as an installed pixring uses it."""

from __future__ import annotations

import os
import subprocess
import sys

from balancer import compile as hot_path
from balancer.config import load_config
from balancer.supervisor import run_balancer


def test_the_request_path_imports_from_any_working_directory(tmp_path):
    # A worker or `pixring` started from elsewhere must find the compiled modules and
    # mypyc's shared runtime (a top-level runtime module was only found from the checkout).
    result = subprocess.run(
        [sys.executable, "-c", "import balancer.front, balancer.upstream; print(balancer.front.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    if hot_path.compiled():
        assert result.stdout.strip().endswith(".so")


def test_stale_names_a_compiled_module_whose_source_is_newer(monkeypatch, tmp_path):
    package = tmp_path / "balancer"
    package.mkdir()
    for name in hot_path.HOT_PATH:
        (package / f"{name}.py").write_text("")
        (package / f"{name}.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    monkeypatch.setattr(hot_path, "PACKAGE", package)
    assert hot_path.stale() == []
    source = package / "front.py"
    later = (package / "front.cpython-311-x86_64-linux-gnu.so").stat().st_mtime + 5
    os.utime(source, (later, later))
    assert hot_path.stale() == ["front"]
    monkeypatch.setattr(hot_path, "ROOT", tmp_path)
    hot_path.clean()
    assert hot_path.compiled() == {} and hot_path.stale() == []


def test_a_machine_without_a_compiler_is_told_apart_from_a_failed_build(monkeypatch, capsys):
    # make falls back to the sources only for CANNOT_COMPILE; any other failure stops it.
    monkeypatch.setenv("CC", "no-such-compiler-here")
    monkeypatch.setattr(sys, "argv", ["balancer.compile"])
    assert hot_path.main() == hot_path.CANNOT_COMPILE
    assert "no C compiler (no-such-compiler-here)" in capsys.readouterr().err


def test_clean_removes_only_the_packages_own_compiled_modules(monkeypatch, tmp_path):
    # Beside an installed pixring is site-packages, where mypy keeps its own mypyc runtime.
    package = tmp_path / "balancer"
    package.mkdir()
    (package / "front.py").write_text("")
    ours = [package / "front.cpython-311-x86_64-linux-gnu.so", package / "_hot_path__mypyc.cpython-311-x86_64-linux-gnu.so"]
    theirs = tmp_path / "6ec57f84c680d3a3778b__mypyc.cpython-311-x86_64-linux-gnu.so"
    for path in [*ours, theirs]:
        path.write_bytes(b"")
    monkeypatch.setattr(hot_path, "PACKAGE", package)
    monkeypatch.setattr(hot_path, "ROOT", tmp_path)
    hot_path.clean()
    assert not any(path.exists() for path in ours) and theirs.exists()


def test_the_balancer_refuses_to_start_on_a_stale_compiled_module(monkeypatch, capsys):
    monkeypatch.setattr(hot_path, "stale", lambda: ["front"])
    config = load_config(environ={}, flags={"nodes": ["n1=http://127.0.0.1:9"], "listen": "127.0.0.1:0",
                                            "admin": "127.0.0.1:0"})
    assert run_balancer(config) == 1
    message = capsys.readouterr().err
    assert "balancer/front.py changed after the request path was compiled" in message
    assert "python -m balancer.compile" in message
