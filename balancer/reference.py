"""The README's configuration and metrics references, generated from the code.

``python -m balancer.reference`` prints both as Markdown and ``--update README.md``
rewrites them between their markers; a test checks that the
README carries exactly this text, so the documentation cannot drift from the
field table in ``balancer.config`` (written by ``pixring.config.Table.reference``) or
the metric table in ``balancer.metrics``.
"""

from __future__ import annotations

from balancer.config import TABLE
from balancer.metrics import METRIC_HELP

__all__ = ["config_reference", "metrics_reference"]


def config_reference() -> str:
    return TABLE.reference()


def metrics_reference() -> str:
    lines = ["| metric | type | meaning |", "|---|---|---|"]
    for name, (kind, help_text) in METRIC_HELP.items():
        lines.append(f"| `{name}` | {kind} | {help_text} |")
    return "\n".join(lines)


def update(text: str) -> str:
    """``text`` with every generated block between its markers replaced."""
    for name, generate in (("config-reference", config_reference), ("metrics-reference", metrics_reference)):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        head, found_start, rest = text.partition(start)
        old, found_end, tail = rest.partition(end)
        if not (found_start and found_end):
            raise ValueError(f"the {name} markers are missing")
        text = head + start + "\n" + generate() + "\n" + end + tail
    return text


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:2] == ["--update"]:
        path = Path(sys.argv[2] if len(sys.argv) > 2 else "README.md")
        path.write_text(update(path.read_text()))
        print(f"updated {path}")
    else:
        print(config_reference() + "\n\n" + metrics_reference())
