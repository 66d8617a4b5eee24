"""The package lines of DESIGN.md, read from the import graph rather than remembered.

Every module of the tree is parsed (``ast``: nothing is imported or run) and every import
in it (top level or inside a function, absolute or relative, and ``importlib.import_module``
of a literal name) is checked against the lines:

* ``discovery/`` imports neither ``balancer/`` nor ``renderer/``;
* ``renderer/`` imports neither ``balancer/`` nor ``discovery/`` (the composition root wires
  its self-registration);
* ``balancer/`` never imports ``renderer/``; of ``discovery/`` it uses the source interface
  (``discovery.source``) and the settings a source is chosen by (``discovery.settings``);
* the shared package ``pixring/`` imports none of the three;
* only the composition root (``pixring/cli/``, ``pixring/__main__.py``) imports all of them,
  and no package imports the root;
* no product package (the root included) imports ``loadtest/`` or ``tests/``, and
  ``loadtest/`` never imports ``tests/``.

A crossing import fails the test with its file and line, e.g.
``discovery/static.py:7: discovery imports balancer.config (discovery never imports balancer)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pixring", "balancer", "discovery", "renderer", "loadtest", "tests")
ROOT_MODULES = ("pixring.cli", "pixring.__main__")  # the composition root (pixring.cli is a package)
# Of discovery, what the balancer may use: the interface every source implements, and
# discovery's settings, which the balancer's table includes.
BALANCER_USES_OF_DISCOVERY = ("discovery.source", "discovery.settings")

# zone -> the zones it must not import, each with the line it would cross.
LINES: dict[str, dict[str, str]] = {
    "shared": {zone: "the shared package imports none of balancer, discovery, renderer"
               for zone in ("balancer", "discovery", "renderer", "root")},
    "discovery": {"balancer": "discovery never imports balancer", "renderer": "discovery never imports renderer",
                  "root": "only the composition root wires packages together"},
    "renderer": {"balancer": "renderer never imports balancer",
                 "discovery": "renderer never imports discovery (the composition root wires self-registration)",
                 "root": "only the composition root wires packages together"},
    "balancer": {"renderer": "balancer never imports renderer",
                 "discovery": "balancer uses only discovery's source interface (discovery.source, discovery.settings)",
                 "root": "only the composition root wires packages together"},
    "root": {},
    "loadtest": {"root": "only the composition root wires packages together"},
    "tests": {},
}
for _zone in ("shared", "discovery", "renderer", "balancer", "root"):
    LINES[_zone].update({"loadtest": "the product never imports the benchmarks",
                         "tests": "the product never imports the tests"})
LINES["loadtest"]["tests"] = "loadtest never imports tests (test helpers live under tests/, benchmarks do not use them)"


def zone_of(module: str) -> str | None:
    """Which side of the lines a dotted module name is on; None for anything not ours."""
    if any(module == root or module.startswith(root + ".") for root in ROOT_MODULES):
        return "root"
    top = module.partition(".")[0]
    if top == "pixring":
        return "shared"
    return top if top in PACKAGES else None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str, root: Path) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in ``path``; ``from X import y`` names X.y
    when that is a module of the tree, since importing it crosses to it."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate, root) else base))
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
              in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def crossings(root: Path) -> list[str]:
    problems = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            importer = zone_of(module_name(path, root))
            if importer is None:
                continue
            for line, target in imports(path, root):
                imported = zone_of(target)
                rule = LINES[importer].get(imported or "")
                if rule is None:
                    continue
                if importer == "balancer" and imported == "discovery" and any(
                        target == allowed or target.startswith(allowed + ".") for allowed in BALANCER_USES_OF_DISCOVERY):
                    continue
                problems.append(f"{path.relative_to(root)}:{line}: {importer} imports {target} ({rule})")
    return list(dict.fromkeys(problems))  # `from x import a, b` is one crossing


def test_no_import_crosses_a_package_line():
    problems = crossings(ROOT)
    assert not problems, "imports across the package lines (DESIGN.md):\n" + "\n".join(problems)


def test_the_root_is_where_the_packages_meet():
    # The check is only worth something if the root really is the one place: it imports all three.
    root_imports = {zone_of(target) for path in (ROOT / "pixring" / "cli").rglob("*.py")
                    for _, target in imports(path, ROOT)}
    assert {"balancer", "discovery", "renderer", "shared"} <= root_imports


@pytest.mark.parametrize("where, code, expected", [
    ("discovery/static.py", "from balancer.config import BalancerConfig\n",
     "discovery/static.py:1: discovery imports balancer.config (discovery never imports balancer)"),
    ("renderer/cli.py", "import os\n\ndef f():\n    from discovery import register\n",
     "renderer/cli.py:4: renderer imports discovery.register (renderer never imports discovery"),
    ("balancer/worker.py", "from discovery.factory import source_for\n",
     "balancer/worker.py:1: balancer imports discovery.factory (balancer uses only discovery's source interface"),
    ("pixring/membership.py", "from ..balancer import ring\n",
     "pixring/membership.py:1: shared imports balancer.ring (the shared package imports none"),
    ("pixring/cpus.py", "from pixring import cli\n",
     "pixring/cpus.py:1: shared imports pixring.cli (the shared package imports none"),
    ("loadtest/failover.py", "import importlib\nkit = importlib.import_module('tests.e2e.faultkit')\n",
     "loadtest/failover.py:2: loadtest imports tests.e2e.faultkit (loadtest never imports tests"),
])
def test_a_crossing_import_is_reported_with_its_file_and_line(tmp_path, where, code, expected):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "pixring" / "cli").mkdir()
    (tmp_path / "pixring" / "cli" / "__init__.py").write_text("import balancer, discovery, renderer\n")
    (tmp_path / "balancer" / "ring.py").write_text("")
    (tmp_path / "discovery" / "register.py").write_text("")
    (tmp_path / "balancer" / "config.py").write_text("from discovery.source import MembershipSource\n")
    (tmp_path / where).write_text(code)
    problems = crossings(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
