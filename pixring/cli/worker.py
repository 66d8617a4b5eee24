"""``python -m pixring.cli.worker``: one balancer worker process, as the supervisor starts it.

The composition root of a worker process: it reads the config the supervisor handed down,
opens the membership source that config names (``pixring.cli.sources``) and runs
``balancer.worker.Worker`` with it. Never started by hand.
"""

from __future__ import annotations

import mmap
import os
import socket
import sys
from pathlib import Path

import orjson

from balancer.config import load_config
from balancer.placement import PLACEMENT_FD_ENV, region_bytes
from balancer.worker import CONFIG_ENV, LISTENER_FD_ENV, WARMUP_ENV, Worker
from pixring.cli.sources import source_for
from pixring.process import die_with_parent

__all__ = ["COMMAND", "main"]

# How the supervisor starts a worker (``balancer.supervisor.run_balancer``'s worker_command).
COMMAND = (sys.executable, "-m", "pixring.cli.worker")


def main() -> int:
    import uvloop

    die_with_parent()
    flags = orjson.loads(os.environ[CONFIG_ENV])
    config = load_config(environ={}, flags=flags)
    shared = os.environ.get(PLACEMENT_FD_ENV)
    region = mmap.mmap(int(shared), region_bytes(config.placement_slots)) if shared and config.steer_renders else None
    worker = Worker(
        config,
        source_for(config),
        index=int(os.environ["PIXRING_WORKER_INDEX"]),
        state_dir=Path(os.environ["PIXRING_STATE_DIR"]),
        listener=socket.socket(fileno=int(os.environ[LISTENER_FD_ENV])),
        listen_without_membership=os.environ.get(WARMUP_ENV) != "strict",
        placement_region=region,
    )
    try:
        return uvloop.run(worker.run())
    except OSError as exc:
        print(f"pixring worker {worker.index}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
