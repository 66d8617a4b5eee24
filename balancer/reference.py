"""The manual's configuration and metrics references, generated from the code.

``python -m balancer.reference`` prints both as Markdown; ``--update`` rewrites each between
its markers in the document that carries it (``docs/configuration.md`` and ``docs/metrics.md``
unless other files are named). A test checks that those documents carry exactly this text,
so the documentation cannot drift from the field table in ``balancer.config`` (written by
``pixring.config.Table.reference``) or the metric table in ``balancer.metrics``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from balancer.config import TABLE
from balancer.metrics import METRIC_HELP

__all__ = ["DOCUMENTS", "REFERENCES", "config_reference", "metrics_reference", "update"]


def config_reference() -> str:
    return TABLE.reference()


def metrics_reference() -> str:
    lines = ["| metric | type | meaning |", "|---|---|---|"]
    for name, (kind, help_text) in METRIC_HELP.items():
        lines.append(f"| `{name}` | {kind} | {help_text} |")
    return "\n".join(lines)


# Each generated block: its marker name, what generates it, and the document (relative to the
# repository's root) that carries it.
REFERENCES: dict[str, Callable[[], str]] = {
    "config-reference": config_reference,
    "metrics-reference": metrics_reference,
}
DOCUMENTS: dict[str, str] = {
    "config-reference": "docs/configuration.md",
    "metrics-reference": "docs/metrics.md",
}


def update(text: str) -> str:
    """``text`` with every generated block whose markers it carries replaced.

    Raises ValueError when it carries no pair of markers, or a start without its end.
    """
    found = False
    for name, generate in REFERENCES.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        head, found_start, rest = text.partition(start)
        old, found_end, tail = rest.partition(end)
        if not found_start:
            continue
        if not found_end:
            raise ValueError(f"the {name} end marker is missing")
        text = head + start + "\n" + generate() + "\n" + end + tail
        found = True
    if not found:
        raise ValueError(f"no reference markers ({', '.join(REFERENCES)}) found")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m balancer.reference",
        description="Print the configuration and metrics references as Markdown, or rewrite them in the manual.",
    )
    parser.add_argument(
        "--update",
        nargs="*",
        metavar="FILE",
        help="rewrite the references between their markers in these files "
        f"(default: {' and '.join(DOCUMENTS.values())}, relative to the current directory)",
    )
    args = parser.parse_args(argv)
    if args.update is None:
        print(config_reference() + "\n\n" + metrics_reference())
        return 0
    for name in args.update or sorted(set(DOCUMENTS.values())):
        path = Path(name)
        try:
            path.write_text(update(path.read_text()))
        except (OSError, ValueError) as exc:
            parser.exit(2, f"{parser.prog}: {path}: {exc}\n")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
