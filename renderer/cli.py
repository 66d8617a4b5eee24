"""``pixring renderer``: flags -> RendererSettings -> the app served on uvloop until a signal.

Rules: every flag's help says what it does and its default. A bad value is a message on
stderr and exit code 2 (argparse's own convention); a listen address already in use is a
message and exit code 1. When the port is bound and the workers are up, exactly one line
goes to stdout, ``pixring renderer listening on http://HOST:PORT`` (the real port when
``:0`` was asked), so supervisors and tests can wait for it. SIGTERM or SIGINT stops
accepting connections, lets in-flight requests and renders finish (up to
``--shutdown-timeout``), shuts the worker pool down and returns 0. Logs are JSON lines on
stderr (``renderer.logs``).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Callable

from aiohttp import web

from pixring.wire import MAX_REQUEST_HEAD, MAX_TARGET_LENGTH
from renderer.settings import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_CACHE_CONTROL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DISK_CACHE_BYTES,
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_SOURCE_BYTES,
    DEFAULT_MAX_SOURCE_PIXELS,
    DEFAULT_METADATA_TTL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RENDER_TIMEOUT,
    RendererSettings,
)
from renderer.workers import DEFAULT_QUEUE_PER_WORKER, default_workers

__all__ = ["DEFAULT_LISTEN", "DEFAULT_ORIGIN", "add_arguments", "run"]

DEFAULT_LISTEN = ("127.0.0.1", 9000)
DEFAULT_ORIGIN = Path("var/samples")
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``pixring renderer`` flags."""
    parser.add_argument(
        "--listen", type=_listen, default=DEFAULT_LISTEN, metavar="HOST:PORT",
        help="address to serve HTTP on; port 0 picks a free port, printed on the ready line "
        "(default: 127.0.0.1:9000)",
    )
    parser.add_argument(
        "--origin", type=_origin, default=None, metavar="DIR|URL",
        help="where source images come from: a directory (a request path names a file below it) or an "
        "http(s):// base URL (the request path is appended; only that host is fetched from) "
        f"(default: {DEFAULT_ORIGIN}/, with the sample images generated there on first use)",
    )
    parser.add_argument(
        "--origin-connect-timeout", type=_positive_float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
        help=f"HTTP origin: time to open a connection; longer is a 504 (default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--origin-read-timeout", type=_positive_float, default=DEFAULT_READ_TIMEOUT, metavar="SECONDS",
        help="HTTP origin: longest wait for any one read; a whole fetch is cut off at connect + 3 x read "
        f"(default: {DEFAULT_READ_TIMEOUT:g})",
    )
    parser.add_argument(
        "--origin-redirects", type=_non_negative_int, default=DEFAULT_MAX_REDIRECTS, metavar="N",
        help=f"HTTP origin: redirects followed, same host only (default: {DEFAULT_MAX_REDIRECTS})",
    )
    parser.add_argument(
        "--origin-ttl", type=_non_negative_float, default=DEFAULT_METADATA_TTL, metavar="SECONDS",
        help="HTTP origin: how long a source's ETag/Last-Modified is trusted before it is asked again; "
        f"0 asks on every request (default: {DEFAULT_METADATA_TTL:g})",
    )
    parser.add_argument(
        "--samples", action="store_true",
        help="generate the sample images into the origin before serving (skips files already "
        "generated; implied when --origin is not given)",
    )
    parser.add_argument(
        "--render-workers", type=_positive_int, default=None, metavar="N",
        help=f"render worker processes, the CPU-bound part (default: one per CPU this process can use, counting "
             f"a cgroup CPU quota; {default_workers()} here)",
    )
    parser.add_argument(
        "--render-queue", type=_non_negative_int, default=None, metavar="N",
        help="renders allowed to wait for a busy worker; beyond that a request gets 503 + Retry-After "
        f"(default: {DEFAULT_QUEUE_PER_WORKER} per worker)",
    )
    parser.add_argument(
        "--cache-bytes", type=_size, default=DEFAULT_CACHE_BYTES, metavar="SIZE",
        help="memory for the in-process cache of rendered images, e.g. 512M or 2G; 0 disables it "
        f"(default: {_human(DEFAULT_CACHE_BYTES)})",
    )
    parser.add_argument(
        "--disk-cache", type=Path, default=None, metavar="DIR",
        help="also keep rendered images in this directory (kept across restarts, shareable by several "
        "renderers) (default: memory only)",
    )
    parser.add_argument(
        "--disk-cache-bytes", type=_size, default=DEFAULT_DISK_CACHE_BYTES, metavar="SIZE",
        help=f"disk space for --disk-cache, e.g. 10G (default: {_human(DEFAULT_DISK_CACHE_BYTES)})",
    )
    parser.add_argument(
        "--cache-control", default=DEFAULT_CACHE_CONTROL, metavar="VALUE",
        help=f"Cache-Control header of every rendered image (default: {DEFAULT_CACHE_CONTROL!r})",
    )
    parser.add_argument(
        "--max-source-pixels", type=_positive_int, default=DEFAULT_MAX_SOURCE_PIXELS, metavar="N",
        help="largest source image, in pixels, read from its header before decoding; larger is 413 "
        f"(default: {DEFAULT_MAX_SOURCE_PIXELS}, i.e. {DEFAULT_MAX_SOURCE_PIXELS // 1_000_000} MP)",
    )
    parser.add_argument(
        "--max-source-bytes", type=_size, default=DEFAULT_MAX_SOURCE_BYTES, metavar="SIZE",
        help=f"largest source file, e.g. 64M; larger is 413 (default: {_human(DEFAULT_MAX_SOURCE_BYTES)})",
    )
    parser.add_argument(
        "--max-output-pixels", type=_positive_int, default=DEFAULT_MAX_OUTPUT_PIXELS, metavar="N",
        help="largest output image, in pixels; a request for more is a 400 "
        f"(default: {DEFAULT_MAX_OUTPUT_PIXELS}, 8192 x 8192 as imgix)",
    )
    parser.add_argument(
        "--render-timeout", type=_positive_float, default=DEFAULT_RENDER_TIMEOUT, metavar="SECONDS",
        help="longest time one render may take in a worker; longer is stopped and answered 503 "
        f"(default: {DEFAULT_RENDER_TIMEOUT:g})",
    )
    parser.add_argument(
        "--shutdown-timeout", type=_positive_float, default=DEFAULT_SHUTDOWN_TIMEOUT, metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight requests may take to finish "
        f"(default: {DEFAULT_SHUTDOWN_TIMEOUT:g})",
    )
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false",
        help="do not write a JSON access-log line per request to stderr (default: write them)",
    )


ServingHook = Callable[[str, int], AbstractAsyncContextManager[None]]


def run(args: argparse.Namespace, *, while_serving: ServingHook | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean stop, 1 if it cannot listen, 2 for bad options.

    ``while_serving(host, port)`` is entered once the port is bound and left, on
    shutdown, *before* the listener stops accepting: the composition root uses it to
    register with service discovery and deregister first, so balancers stop sending
    here while in-flight requests still finish.
    """
    origin = args.origin if args.origin is not None else DEFAULT_ORIGIN
    try:
        if isinstance(origin, Path):
            if args.samples or args.origin is None:
                from renderer.samples import ensure_samples

                ensure_samples(origin)
            if not origin.is_dir():
                raise ValueError(f"--origin {origin}: not a directory")
        elif args.samples:
            raise ValueError("--samples needs a directory --origin, not a URL")
        settings = RendererSettings(
            origin=origin,
            render_workers=args.render_workers,
            render_queue=args.render_queue,
            cache_bytes=args.cache_bytes,
            disk_cache=args.disk_cache,
            disk_cache_bytes=args.disk_cache_bytes,
            cache_control=args.cache_control,
            max_source_pixels=args.max_source_pixels,
            max_source_bytes=args.max_source_bytes,
            max_output_pixels=args.max_output_pixels,
            render_timeout=args.render_timeout,
            origin_connect_timeout=args.origin_connect_timeout,
            origin_read_timeout=args.origin_read_timeout,
            origin_redirects=args.origin_redirects,
            origin_ttl=args.origin_ttl,
            access_log=args.access_log,
        )
    except (ValueError, OSError) as exc:
        print(f"pixring renderer: {exc}", file=sys.stderr)
        return 2
    host, port = args.listen
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(settings, host, port, args.shutdown_timeout, while_serving))


# Every request head the balancer forwards at its defaults: a target of up to its
# max_request_line (8 KiB), a head of up to its max_header_bytes (16 KiB), plus the
# fields pixring adds. aiohttp's own limits (8190-byte lines and fields, 128 fields)
# would answer some requests the balancer accepted with a plain-text 400.
ACCEPTED_HEADS: dict[str, int] = {"max_line_size": MAX_TARGET_LENGTH + 64, "max_field_size": MAX_REQUEST_HEAD + 512,
                                  "max_headers": MAX_REQUEST_HEAD // 5 + 16}


async def _serve(
    settings: RendererSettings, host: str, port: int, shutdown_timeout: float, while_serving: ServingHook | None
) -> int:
    from pixring.sdnotify import Notifier
    from renderer.app import make_app
    from renderer.logs import JsonAccessLogger, log_event

    notify = Notifier()  # Type=notify under systemd: started once it listens (and is registered)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    app = make_app(settings)
    options: dict[str, object] = {"access_log_class": JsonAccessLogger, **ACCEPTED_HEADS}
    if not settings.access_log:
        options["access_log"] = None
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, **options)  # type: ignore[arg-type]
    await runner.setup()  # starts and warms the worker pool
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            print(f"pixring renderer: cannot listen on {_format(host, port)}: {reason}", file=sys.stderr)
            return 1
        bound_host, bound_port = runner.addresses[0][:2]
        log_event("start", listen=_format(bound_host, bound_port), origin=str(settings.origin),
                  disk_cache=str(settings.disk_cache) if settings.disk_cache else None)
        listening = f"listening on http://{_format(bound_host, bound_port)}"
        if while_serving is None:
            print(f"pixring renderer {listening}", flush=True)
            notify.ready(listening)
            await stop.wait()
            notify.stopping("finishing in-flight renders")
        else:
            try:
                async with while_serving(bound_host, bound_port):
                    print(f"pixring renderer {listening}", flush=True)
                    notify.ready(listening + ", registered")
                    await stop.wait()
                    notify.stopping("deregistering, then finishing in-flight renders")
            except Exception as exc:  # registration refused: say so, do not serve unseen
                print(f"pixring renderer: {exc}", file=sys.stderr)
                return 1
        log_event("stopping")
    finally:
        # Stops accepting, waits for in-flight requests, then the pool (cleanup context).
        await runner.cleanup()
    log_event("stopped")
    return 0


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be 0-65535")
    return host, int(port)


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _origin(text: str) -> Path | str:
    if text.startswith(("http://", "https://")):
        from yarl import URL

        url = URL(text)
        if not url.host or url.query_string or url.fragment:
            raise argparse.ArgumentTypeError(f"{text!r}: an origin URL needs a host and no query or fragment")
        return text
    if "://" in text:
        raise argparse.ArgumentTypeError(f"{text!r}: only http:// and https:// origins are supported")
    return Path(text)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or a positive number")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional binary K/M/G suffix (``64M`` = 64 MiB); a trailing B is fine."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        value = int(float(number) * _UNITS[unit]) if number else -1
    except (ValueError, OverflowError):
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes (e.g. 1048576, 512K, 64M, 2G)")
    return value


def _human(size: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
