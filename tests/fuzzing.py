"""Fuzz targets: the front's request-head parsing and URL normalization, for ``make fuzz``.

``python -m tests.fuzzing front|normalize [libFuzzer flags]`` runs one target under atheris
(coverage-guided, libFuzzer's engine: https://github.com/google/atheris); ``make fuzz``
runs both for a bounded time (``FUZZ_SECONDS``), seeded with the hostile corpus of
``tests/e2e/test_hostile.py`` and keeping what it learns in ``var/fuzz/``. A crash is written
to ``var/fuzz/crashes/`` and becomes a regression test in ``tests/unit/test_fuzz_targets.py``.

- ``front``: the bytes are what a client sends. They go to a real ``ClientConnection`` (the
  front's httptools parser and its callbacks, the normalizer, the header rules) whose
  transports record what it writes. What must hold: ``data_received`` never raises; what
  the client gets is a response whose status pixring chose from 4xx (or nothing yet, while
  the request is with the node); and what the node gets is a well-formed GET or HEAD head
  with a normalized target and none of the client's forwarding fields.
- ``normalize``: the bytes are a request target. It routes or is refused with a
  ``NormalizeError`` of 400 or 414 and nothing else; a key is printable ASCII without space
  or ``#`` and is its own normal form; the upstream target is the key.

The balancer's request path may be compiled (mypyc): the fuzzer's coverage feedback then
comes from the Python modules only (normalization, the schema), while the compiled front is
exercised all the same.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

from balancer.accesslog import AccessLog
from balancer.front import ClientConnection, FrontContext, FrontLimits
from balancer.normalize import NormalizeError, make_normalizer
from balancer.routing import RoutingTable
from balancer.stats import WorkerStats
from balancer.upstream import UpstreamConnection, UpstreamPool
from loadtest.transports import RecordingTransport
from pixring.membership import Member, Membership

__all__ = ["SEEDS", "front_once", "normalize_once"]

MEMBER = Member("n1", "127.0.0.1", 9001)
_NORMALIZE = make_normalizer("imgix", cache_size=0)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_CLIENTS_FORWARDING = re.compile(rb"\r\n(?:forwarded|x-real-ip|x-forwarded-(?!for:)[^:]*|x-pixring-[^:]*):",
                                 re.IGNORECASE)
_UPSTREAM_HEAD = re.compile(rb"(GET|HEAD) (/[\x21-\x7e]*) HTTP/1\.1\r\nHost: 127\.0\.0\.1:9001\r\n")

SEEDS: tuple[bytes, ...] = (
    b"GET /photos/cat.jpg?w=400&h=300&fit=crop&fm=webp HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /photos/cat.jpg?w=8192&h=8192&fit=scale&fm=png HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /a%zz?w=%4 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /photos/%2e%2E/../x.jpg?W=1&width=2&w64=NDAw&q=1000&rot=720 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET http://user@h/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=x\r\nX-Pixring-Node: e\r\n"
    b"X-A: 1\r\n folded\r\nConnection: X-A, close\r\n\r\n",
    b"GET /x?" + b"%41" * 300 + b" HTTP/1.0\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
)


class _Front:
    """One event loop and one routing table for every input (building them per input would
    leave the fuzzer nothing to spend its time on)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = UpstreamPool(self.loop, connect_timeout=1.0, read_timeout=30.0, max_idle=4, idle_timeout=30.0)
        self.ctx = FrontContext(
            loop=self.loop, normalize=make_normalizer("imgix", cache_size=64), pool=self.pool, stats=WorkerStats(),
            access_log=AccessLog("off", self.loop), node_header="X-Pixring-Node", via="pixring",
            limits=FrontLimits(max_request_line=8192, max_header_bytes=16384, header_timeout=10.0,
                               idle_timeout=60.0),
        )
        self.ctx.set_table(RoutingTable.build(Membership.of([MEMBER])))

    def exchange(self, data: bytes) -> tuple[bytes, bytes]:
        upstream, node_side = UpstreamConnection(self.pool, MEMBER), RecordingTransport()
        upstream.connection_made(node_side)  # type: ignore[arg-type]
        self.pool.release(upstream)
        client, client_side = ClientConnection(self.ctx), RecordingTransport("192.0.2.7")
        client.connection_made(client_side)  # type: ignore[arg-type]
        try:
            client.data_received(data)
            self.loop.run_until_complete(asyncio.sleep(0))  # the turn ends: writes leave
        finally:
            client.connection_lost(None)
            upstream.connection_lost(None)
            self.loop.run_until_complete(asyncio.sleep(0))
        return b"".join(node_side.written), b"".join(client_side.written)


_FRONT: list[_Front] = []


def front_once(data: bytes) -> None:
    """One client's bytes through the front; AssertionError when an invariant breaks."""
    if not _FRONT:
        _FRONT.append(_Front())
    to_node, to_client = _FRONT[0].exchange(data)
    for status in _STATUS_LINE.findall(to_client):
        # With a healthy member, anything pixring answers itself is the client's fault.
        assert status.startswith(b"4") or status == b"100", (status, data[:200], to_client[:300])
    if to_node:
        head = _UPSTREAM_HEAD.match(to_node)
        assert head is not None, (to_node[:300], data[:200])
        assert to_node.endswith(b"\r\n\r\n"), to_node[-100:]
        target = head.group(2).decode("ascii")
        assert _NORMALIZE(target.encode()).key == target, target  # the node gets the normal form
        assert _CLIENTS_FORWARDING.search(to_node.partition(b"\r\nX-Forwarded-For: ")[0]) is None, to_node[:500]


def normalize_once(data: bytes) -> None:
    """One target through the normalizer; AssertionError when an invariant breaks."""
    try:
        route = _NORMALIZE(data)
    except NormalizeError as error:
        assert error.status in (400, 414), (error.status, data[:200])
        assert error.reason, data[:200]
        return
    key = route.key
    assert key.startswith("/") and key.isascii(), key
    assert not any(c <= " " or c in "#\x7f" for c in key), key
    assert route.upstream_target == key.encode("ascii"), (route, data[:200])
    assert _NORMALIZE(key.encode()).key == key, (key, data[:200])


TARGETS = {"front": front_once, "normalize": normalize_once}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzzing", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS), help="what to fuzz")
    parser.add_argument("libfuzzer", nargs=argparse.REMAINDER,
                        help="libFuzzer's flags (-max_total_time=60, -artifact_prefix=...) and corpus directories")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    import atheris  # installed by `make fuzz` (the `fuzz` extra)

    target = TARGETS[args.target]

    def one_input(data: bytes) -> None:
        target(data)

    corpus = [a for a in args.libfuzzer if not a.startswith("-")]
    for directory in corpus[:1]:  # seed the first corpus directory once
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(SEEDS):
            seed_file = path / f"seed-{index}"
            if not seed_file.exists():
                seed_file.write_bytes(seed if args.target == "front" else seed.split(b" ")[1])
    atheris.instrument_all()  # every Python function loaded so far reports its coverage
    atheris.Setup([sys.argv[0], *args.libfuzzer], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
