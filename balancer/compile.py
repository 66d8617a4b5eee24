"""Compile the request path to C with mypyc: ``python -m balancer.compile [--clean]``.

Why: every request runs a few dozen small Python functions (httptools callbacks, the
exchange, the heads, the log line) and CPython's cost per call and per attribute is
most of pixring's time on the hot path. mypyc (part of mypy, well kept, used by mypy
and black on themselves) compiles the same annotated modules into C extensions with
native attribute slots and direct calls: measured with ``loadtest.request_path_bench``
14.2 -> 9.7 µs of Python per request for the first four modules, and about 20% more
requests per second in the benchmark. The modules stay plain Python that runs
unchanged where no C compiler is around; ``make`` compiles them when their sources
change.

A compiled module is imported in place of its source (an extension module beats a .py
of the same name), so a source edited after compiling would be ignored, and one left
behind by a module that moved or was removed would still answer its old name:
``stale()`` names both, the test session and the balancer refuse to start on them,
``--clean`` removes every compiled module, and a build starts with a clean.

Documents relied on: https://mypyc.readthedocs.io/en/latest/getting_started.html
(``mypycify``, building in place) and .../differences_from_python.html (what
compiled code does differently: attribute types are checked at run time).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["HOT_PATH", "build", "clean", "compiled", "describe", "stale"]

# The directory holding the packages (the checkout, or site-packages where pixring is installed).
ROOT = Path(__file__).resolve().parent.parent
# The modules every proxied request runs through, in import order. Not here: ring
# (it pickles itself and checks argument types that compiled signatures would check
# first).
HOT_PATH = (
    "balancer.health", "pixring.membership", "balancer.routing", "balancer.headers", "balancer.accesslog",
    "balancer.picker", "balancer.hotkeys", "balancer.placement", "balancer.stats", "balancer.retry", "balancer.exchange", "balancer.outbox",
    "balancer.upstream", "balancer.front",
)
# The packages compiled modules live in: every package HOT_PATH names. They are copied
# whole for the build, since the compiled modules take types from the modules they import.
PACKAGES = tuple(dict.fromkeys(name.partition(".")[0] for name in HOT_PATH))
# mypyc's shared runtime for the group, a module of the package too, so it is found
# wherever pixring runs from (a top-level one would need the checkout on sys.path).
GROUP = "balancer._hot_path"
# Exit status when this machine cannot compile at all (no C compiler, no mypyc): make
# then runs the sources. Any other failure, a type error mypyc refuses above all, is
# the code's and stops the build.
CANNOT_COMPILE = 3


def source(module: str) -> Path:
    """``balancer.front`` -> the path of its source file."""
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def _extensions() -> dict[str, Path]:
    """Module name -> compiled extension, for every module extension in the packages
    (mypyc's shared runtime for the group excepted), whether or not its source exists."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.so"):
            name = path.name.split(".", 1)[0]
            if not name.endswith("__mypyc"):
                found[f"{package}.{name}"] = path
    return found


def compiled() -> dict[str, Path]:
    """Module name -> its compiled extension, where one exists beside its source.

    Every module of the packages counts, not only HOT_PATH's: one dropped from the list
    would otherwise keep shadowing its source, unseen by ``stale`` and ``clean``."""
    return {name: path for name, path in _extensions().items() if source(name).exists()}


def describe() -> str:
    """How the request path runs here, for the reports of tests and benchmarks."""
    built = compiled()
    if not built:
        return "plain Python (not compiled)"
    return "compiled with mypyc (" + ", ".join(name for name in HOT_PATH if name in built) + ")"


def stale() -> list[str]:
    """What a compiled module would hide, as paths relative to ROOT: sources changed after
    they were built, and sources that are gone (a module moved to another package or
    removed), whose old extension still answers the old name."""
    out = []
    for name, ext in sorted(_extensions().items()):
        path = source(name)
        if not path.exists():
            out.append(f"{path.relative_to(ROOT)} (removed; its compiled module is left)")
        elif path.stat().st_mtime > ext.stat().st_mtime:
            out.append(str(path.relative_to(ROOT)))
    return out


def clean() -> None:
    """Remove every compiled module of the packages, those left by moved modules too."""
    for path in _extensions().values():
        path.unlink()
    # The group's runtime. Only the packages' own: beside an installed package is
    # site-packages, where other projects built with mypyc (mypy itself) keep theirs.
    for package in PACKAGES:
        for path in (ROOT / package).glob("*__mypyc.*.so"):
            path.unlink()


def build() -> None:
    """Compile HOT_PATH and copy the extensions into the package.

    The build runs on a copy of the packages (``balancer`` and ``pixring``: the
    membership snapshot is compiled too, and the normalizer imports the schema), in a
    scratch directory: mypy takes its working directory for
    the root of the modules it checks, and an installed pixring's is site-packages,
    where every other installed module would pass for one of ours (mypy refuses a
    ``typing_extensions.py`` there). So a checkout and a deployed virtualenv compile
    the same way (the Ansible role runs ``python -m balancer.compile`` on the host).
    """
    from mypyc.build import mypycify  # imported here: only the build needs mypy
    from setuptools import setup

    clean()
    with tempfile.TemporaryDirectory(prefix="pixring-mypyc-") as scratch:
        tree = Path(scratch) / "src"
        for package in dict.fromkeys((*PACKAGES, "pixring")):
            shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        build_dir = str(Path(scratch) / "build")
        cwd = os.getcwd()
        os.chdir(tree)  # mypyc names modules from paths relative to the working directory
        try:
            setup(
                name="pixring-hot-path",
                ext_modules=mypycify(
                    [str(source(name).relative_to(ROOT)) for name in HOT_PATH]
                    + ["--ignore-missing-imports", "--follow-imports=silent"],
                    opt_level="3",
                    target_dir=build_dir,
                    group_name=GROUP,
                ),
                script_args=["--quiet", "build_ext", "--inplace", "--build-temp", build_dir, "--build-lib", build_dir],
            )
        finally:
            os.chdir(cwd)
        for package in PACKAGES:
            for extension in (tree / package).glob("*.so"):
                shutil.copyfile(extension, ROOT / package / extension.name)
    # Fresh file times: what was just built matches the sources now, which is what
    # ``stale`` compares.
    for path in compiled().values():
        path.touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules and exit")
    args = parser.parse_args()
    if args.clean:
        clean()
        print("removed the compiled request path; pixring runs it as plain Python")
        return 0
    compiler = os.environ.get("CC", "cc").split()[0]
    if shutil.which(compiler) is None or importlib.util.find_spec("mypyc") is None:
        missing = "mypyc (pip install -e '.[compile]')" if shutil.which(compiler) else f"C compiler ({compiler})"
        print(f"cannot compile the request path here: no {missing}", file=sys.stderr)
        return CANNOT_COMPILE
    print(f"compiling the request path with mypyc: {', '.join(str(source(n).relative_to(ROOT)) for n in HOT_PATH)} ...",
          flush=True)
    build()
    missing = [name for name in HOT_PATH if name not in compiled()]
    if missing:
        print(f"mypyc built no extension for {', '.join(missing)}", file=sys.stderr)
        return 1
    print("compiled: " + ", ".join(str(p.relative_to(ROOT)) for p in compiled().values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
