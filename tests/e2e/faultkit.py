"""The fault tests' own pieces on ``loadtest.fleet``: nodes whose faults a test switches.

``FaultFleet`` is ``loadtest.fleet.Fleet`` that can also start ``tests/fault_node.py``
processes and Python's own ``http.server``; ``opaque_urls`` are keys for fault nodes (they
answer any path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

from loadtest.fleet import Fleet, Node, StaticFileNode, http

__all__ = ["FaultFleet", "FaultNode", "StaticFileNode", "opaque_urls"]


class FaultNode(Node):
    """``tests/fault_node.py``: a node whose faults are switched through ``PUT /_fault``."""

    def __init__(self, name: str, log_dir: Path, delay: float = 0.0, port: int = 0) -> None:
        super().__init__(
            name,
            lambda p: [sys.executable, "-m", "tests.fault_node", "--port", str(p), "--name", name,
                       "--delay", repr(delay)],
            log_dir, port,
        )

    def set(self, mode: str, **fields: object) -> dict:
        status, _, body = http("PUT", self.url + "/_fault", {"mode": mode, **fields})
        if status != 200:
            raise RuntimeError(f"{self.name}: PUT /_fault {mode} -> {status} {body!r}")
        return json.loads(body)


class FaultFleet(Fleet):
    def fault_nodes(self, names: Iterable[str], delay: float = 0.0) -> dict[str, FaultNode]:
        return self.start_nodes({name: FaultNode(name, self.log_dir, delay) for name in names})

    def static_file_nodes(self, names: Iterable[str], directory: Path) -> dict[str, StaticFileNode]:
        return self.start_nodes({name: StaticFileNode(name, directory, self.log_dir) for name in names})


def opaque_urls(count: int) -> list[str]:
    """Distinct keys for fault nodes, which answer any path."""
    return [f"/photos/k{i}.jpg?w=100" for i in range(count)]
