"""Where a process's CPU goes, by layer, from ``perf report``'s table of samples.

Rules of this module
--------------------
* Input is the text of ``perf report --stdio --no-children --sort dso,sym -n -t <TAB>``
  (perf-report(1): ``-n`` adds the sample count, ``-t`` separates the columns, which perf
  still pads with spaces), one row per (shared object, symbol): overhead %, samples, shared
  object, then ``[k]`` (kernel) or ``[.]`` (user space) and the symbol. Comment lines (``#``) and blank lines are skipped; any other line that is not such
  a row is an error naming it, never silently dropped.
* A sample belongs to a layer by the shared object it was taken in (``[k]`` is the kernel
  whatever the object). The caller says which objects are whose (``Layers``): this module
  reads no files and knows no paths.
* pixring's compiled functions are named the way mypyc names them in C
  (``CPyDef_<module>___<Class>___<method>``, ``CPyPy_`` for the wrapper Python calls it
  through); both are shown as ``module.Class.method``. Anything else in pixring's objects
  is mypyc's runtime (boxing, bytes building), shown as such.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

__all__ = [
    "CPYTHON", "KERNEL", "LIBC", "MYPYC_RUNTIME", "OTHER", "PIXRING",
    "Layers", "Profile", "ProfileError", "Row", "parse_report", "pixring_function", "summarize",
]

KERNEL = "kernel (TCP/IP, system calls, wake-ups)"
CPYTHON = "CPython (objects, calls, memory)"
PIXRING = "pixring (compiled request path)"
LIBC = "libc (copies, allocation)"
OTHER = "other"
MYPYC_RUNTIME = "(mypyc runtime: boxing, bytes building)"

_SYMBOL = re.compile(r"^\[(?P<space>[k.])\] (?P<name>.+)$")
_MYPYC_NAME = re.compile(r"^CPy(?:Def|Py)_(?P<name>.+)$")


class ProfileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Row:
    samples: int
    dso: str
    symbol: str
    kernel: bool


@dataclass(frozen=True)
class Layers:
    """Which shared objects belong to which layer, by file name (``perf`` shows base names)."""

    pixring: frozenset[str]
    named: Mapping[str, str] = field(default_factory=dict)  # other objects: base name -> layer

    def of(self, row: Row) -> str:
        if row.kernel or row.dso.startswith("[kernel"):
            return KERNEL
        if row.dso in self.pixring:
            return PIXRING
        if row.dso.startswith("libpython"):
            return CPYTHON
        if row.dso.startswith(("libc.so", "libc-", "ld-linux", "libm.so")) or row.dso == "[vdso]":
            return LIBC
        return self.named.get(row.dso, OTHER)


@dataclass(frozen=True)
class Profile:
    samples: int
    layers: list[tuple[str, int]]  # layer, samples: most first
    pixring_functions: list[tuple[str, int]]  # module.Class.method, samples: most first
    symbols: list[tuple[str, str, int]]  # layer, symbol, samples: most first

    def share(self, samples: int) -> float:
        return samples / self.samples if self.samples else 0.0


def parse_report(text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        columns = [column.strip() for column in line.split("\t")]
        symbol = _SYMBOL.match(columns[3]) if len(columns) == 4 else None
        if symbol is None or not columns[1].isdigit() or not columns[2]:
            raise ProfileError(f"perf report line {number} is not a row of samples: {line!r}")
        rows.append(Row(int(columns[1]), columns[2], symbol["name"], symbol["space"] == "k"))
    return rows


def pixring_function(symbol: str) -> str:
    """``CPyDef_front___ClientConnection____start`` -> ``front.ClientConnection._start``.

    mypyc joins module, class and function with three underscores; a name that starts
    with an underscore keeps it, so ``____start`` is the separator and ``_start``.
    """
    match = _MYPYC_NAME.match(symbol)
    if match is None:
        return MYPYC_RUNTIME
    return ".".join(match["name"].split("___"))


def summarize(rows: Iterable[Row], layers: Layers, top: int = 15) -> Profile:
    by_layer: dict[str, int] = defaultdict(int)
    by_function: dict[str, int] = defaultdict(int)
    by_symbol: dict[tuple[str, str], int] = defaultdict(int)
    total = 0
    for row in rows:
        layer = layers.of(row)
        total += row.samples
        by_layer[layer] += row.samples
        by_symbol[(layer, row.symbol)] += row.samples
        if layer == PIXRING:
            by_function[pixring_function(row.symbol)] += row.samples
    if not total:
        raise ProfileError("perf recorded no samples of the process")

    def most(counts: Mapping) -> list:
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    return Profile(
        samples=total,
        layers=most(by_layer),
        pixring_functions=most(by_function)[:top],
        symbols=[(layer, symbol, n) for (layer, symbol), n in most(by_symbol)[:top]],
    )
