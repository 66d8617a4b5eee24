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


SO = ".cpython-311-x86_64-linux-gnu.so"


def fake_build(root):
    """Every HOT_PATH module with an empty source and an empty extension, under root."""
    for name in hot_path.HOT_PATH:
        package, module = name.split(".")
        (root / package).mkdir(exist_ok=True)
        (root / package / f"{module}.py").write_text("")
        (root / package / f"{module}{SO}").write_bytes(b"")


def test_stale_names_a_compiled_module_whose_source_is_newer(monkeypatch, tmp_path):
    fake_build(tmp_path)
    monkeypatch.setattr(hot_path, "ROOT", tmp_path)
    assert hot_path.stale() == []
    source = tmp_path / "balancer" / "front.py"
    later = (tmp_path / "balancer" / f"front{SO}").stat().st_mtime + 5
    os.utime(source, (later, later))
    assert hot_path.stale() == ["balancer/front.py"]
    hot_path.clean()
    assert hot_path.compiled() == {} and hot_path.stale() == []


def test_a_compiled_module_left_by_a_moved_source_is_stale_and_cleaned(monkeypatch, tmp_path):
    # balancer/membership.py moved to pixring/: its old extension would still answer
    # `import balancer.membership`, hiding an import that was not updated.
    fake_build(tmp_path)
    left = tmp_path / "balancer" / f"membership{SO}"
    left.write_bytes(b"")
    monkeypatch.setattr(hot_path, "ROOT", tmp_path)
    assert hot_path.stale() == ["balancer/membership.py (removed; its compiled module is left)"]
    assert "balancer.membership" not in hot_path.compiled()
    hot_path.clean()
    assert not left.exists() and hot_path.stale() == []


def test_the_makefile_rebuilds_when_a_compiled_module_changes():
    # make compiles when a prerequisite of the stamp is newer: every compiled module's
    # source must be one, wherever its package is.
    makefile = (hot_path.ROOT / "Makefile").read_text()
    line = makefile.split("HOT_PATH_SOURCES :=", 1)[1].split("\n", 1)[0]
    for name in hot_path.HOT_PATH:
        path = str(hot_path.source(name).relative_to(hot_path.ROOT))
        package = path.rsplit("/", 1)[0]
        assert path in line.split() or f"$(wildcard {package}/*.py)" in line, f"{path} is not a prerequisite"


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
    ours = [package / f"front{SO}", package / f"_hot_path__mypyc{SO}"]
    theirs = tmp_path / f"6ec57f84c680d3a3778b__mypyc{SO}"
    for path in [*ours, theirs]:
        path.write_bytes(b"")
    monkeypatch.setattr(hot_path, "ROOT", tmp_path)
    hot_path.clean()
    assert not any(path.exists() for path in ours) and theirs.exists()


def test_the_balancer_refuses_to_start_on_a_stale_compiled_module(monkeypatch, capsys):
    monkeypatch.setattr(hot_path, "stale", lambda: ["balancer/front.py"])
    config = load_config(environ={}, flags={"nodes": ["n1=http://127.0.0.1:9"], "listen": "127.0.0.1:0",
                                            "admin": "127.0.0.1:0"})
    assert run_balancer(config, worker_command=[sys.executable, "-c", "raise SystemExit(9)"]) == 1
    message = capsys.readouterr().err
    assert "balancer/front.py changed after the request path was compiled" in message
    assert "python -m balancer.compile" in message
