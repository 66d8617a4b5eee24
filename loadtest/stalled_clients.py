"""What clients that never read their answer cost the balancer: ``python -m loadtest.stalled_clients``.

A client that asks for a large image and reads none of it must not make the balancer hold
that image: the front pauses reading from the node once a client's write buffer reaches
its high-water mark, and caps the socket's send buffer. This starts a real balancer (one
worker) in front of Python's own ``http.server`` serving one large file, opens
``--clients`` connections that each send a GET and never read, and prints the worker's
resident memory before and after, per stalled client, next to a baseline of as many
clients that read their answer whole.

Figures are the worker's ``VmRSS`` (``/proc/PID/status``): what the process holds, not
the kernel's socket buffers, which the send-buffer cap bounds separately.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

from loadtest.fleet import Fleet, StaticFileNode

__all__ = ["main", "rss_kib"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def stall(port: int, path: str, clients: int) -> list[socket.socket]:
    """``clients`` connections, each with a GET sent and nothing ever read."""
    held = []
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        held.append(sock)
    return held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="stalled clients (default 50)")
    parser.add_argument("--size-mib", type=int, default=8, help="size of the answer, MiB (default 8)")
    parser.add_argument("--coalesce", choices=("true", "false"), default="true", help="the balancer's --coalesce (default true)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let buffers fill (default 3)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pixring-stalled-") as scratch, Fleet(Path(scratch) / "logs") as fleet:
        files = Path(scratch) / "files"
        (files / "photos").mkdir(parents=True)
        (files / "photos" / "large.jpg").write_bytes(b"\xff" * (args.size_mib * 1024 * 1024))
        nodes = fleet.start_nodes({"files": StaticFileNode("files", files, fleet.log_dir)})
        balancer = fleet.balancer(nodes, workers=1, extra=["--coalesce", args.coalesce])
        (worker,) = balancer.worker_pids()
        path = "/photos/large.jpg"
        before = rss_kib(worker)
        print(f"worker {worker}: {before / 1024:.1f} MiB resident before; {args.clients} clients ask for "
              f"{args.size_mib} MiB each and read nothing", flush=True)
        held = stall(balancer.port, path, args.clients)
        time.sleep(args.settle)
        after = rss_kib(worker)
        added = (after - before) / 1024
        print(f"after {args.settle:g}s: {after / 1024:.1f} MiB resident: +{added:.1f} MiB, "
              f"{added * 1024 / args.clients:.0f} KiB per stalled client")
        for sock in held:
            sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
