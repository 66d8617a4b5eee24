"""Run the Consul double as a process: ``python -m tests.consul_double --port 8500``.

Prints one line, ``consul double listening on http://HOST:PORT``, once it accepts
connections (so a test can wait for it), then serves until SIGINT or SIGTERM.
Durations take Go syntax (``500ms``, ``30s``, ``1m``); the defaults are Consul's.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from tests.consul_double.model import parse_go_duration
from tests.consul_double.state import DoubleConfig
from tests.consul_double.app import serve


def _duration(text: str) -> float:
    try:
        seconds = parse_go_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive duration")
    return seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.consul_double", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8500, help="port to listen on; 0 picks one (default 8500)")
    parser.add_argument("--node", default="consul-double", help="the agent's node name")
    parser.add_argument("--node-address", default="127.0.0.1", help="the node's address (Node.Address)")
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--min-check-interval", type=_duration, default=1.0, metavar="DURATION",
                        help="floor for check intervals (Consul: 1s)")
    parser.add_argument("--reap-interval", type=_duration, default=30.0, metavar="DURATION",
                        help="how often critical services are reaped (Consul: 30s)")
    parser.add_argument("--min-deregister-after", type=_duration, default=60.0, metavar="DURATION",
                        help="floor for DeregisterCriticalServiceAfter (Consul: 1m)")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    config = DoubleConfig(
        node=args.node,
        node_address=args.node_address,
        datacenter=args.datacenter,
        min_check_interval_s=args.min_check_interval,
        reap_interval_s=args.reap_interval,
        min_deregister_after_s=args.min_deregister_after,
    )
    double = await serve(config, host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"consul double listening on {double.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await double.close()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_main(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
