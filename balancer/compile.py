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
of the same name), so a source edited after compiling would be ignored: ``stale()``
names such modules, the test session refuses to start on them, and ``--clean``
removes every compiled module.

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

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
# The modules every proxied request runs through, in import order. Not here: ring
# (it pickles itself and checks argument types that compiled signatures would check
# first).
HOT_PATH = ("health", "membership", "routing", "headers", "accesslog", "picker", "stats", "retry", "outbox", "upstream", "front")
# mypyc's shared runtime for the group, a module of the package too, so it is found
# wherever pixring runs from (a top-level one would need the checkout on sys.path).
GROUP = "balancer._hot_path"
# Exit status when this machine cannot compile at all (no C compiler, no mypyc): make
# then runs the sources. Any other failure, a type error mypyc refuses above all, is
# the code's and stops the build.
CANNOT_COMPILE = 3


def compiled() -> dict[str, Path]:
    """Module name -> its compiled extension in the package directory, where one exists.

    Every module of the package counts, not only HOT_PATH's: one dropped from the list
    would otherwise keep shadowing its source, unseen by ``stale`` and ``clean``."""
    found = {}
    for path in PACKAGE.glob("*.so"):
        name = path.name.split(".", 1)[0]
        if (PACKAGE / f"{name}.py").exists():
            found[name] = path
    return found


def describe() -> str:
    """How the request path runs here, for the reports of tests and benchmarks."""
    built = compiled()
    if not built:
        return "plain Python (not compiled)"
    return "compiled with mypyc (" + ", ".join(name for name in HOT_PATH if name in built) + ")"


def stale() -> list[str]:
    """Compiled modules whose source changed after they were built."""
    return [name for name, ext in compiled().items()
            if (PACKAGE / f"{name}.py").stat().st_mtime > ext.stat().st_mtime]


def clean() -> None:
    for path in compiled().values():
        path.unlink()
    # The group's runtime. Only the package's own: beside an installed package is
    # site-packages, where other projects built with mypyc (mypy itself) keep theirs.
    for path in PACKAGE.glob("*__mypyc.*.so"):
        path.unlink()


def build() -> None:
    """Compile HOT_PATH and copy the extensions into the package.

    The build runs on a copy of the package (and of ``pixring``, whose schema the
    normalizer imports), in a scratch directory: mypy takes its working directory for
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
        for package in (PACKAGE, ROOT / "pixring"):
            shutil.copytree(package, tree / package.name, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        build_dir = str(Path(scratch) / "build")
        cwd = os.getcwd()
        os.chdir(tree)  # mypyc names modules from paths relative to the working directory
        try:
            setup(
                name="pixring-hot-path",
                ext_modules=mypycify(
                    [f"{PACKAGE.name}/{name}.py" for name in HOT_PATH]
                    + ["--ignore-missing-imports", "--follow-imports=silent"],
                    opt_level="3",
                    target_dir=build_dir,
                    group_name=GROUP,
                ),
                script_args=["--quiet", "build_ext", "--inplace", "--build-temp", build_dir, "--build-lib", build_dir],
            )
        finally:
            os.chdir(cwd)
        for extension in (tree / PACKAGE.name).glob("*.so"):
            shutil.copyfile(extension, PACKAGE / extension.name)
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
    print(f"compiling the request path with mypyc: {', '.join(f'balancer/{n}.py' for n in HOT_PATH)} ...",
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
