"""``pixring renderer``: its fields -> RendererSettings -> the app served on uvloop until a signal.

Rules: the fields are a table (``renderer.config``), read from a TOML file (``--config``),
then ``PIXRING_RENDERER_*`` variables, then flags; every flag's help says what it does and
its default. A value that cannot be used is a message on stderr naming the field, and exit
code 2; a listen address already in use is a message and exit code 1. ``--print-config``
prints the effective configuration as JSON and exits. When the port is bound and the
workers are up, exactly one line goes to stdout, ``pixring renderer listening on
http://HOST:PORT`` (the real port when ``:0`` was asked), so supervisors and tests can
wait for it. The admin listener (``/metrics``, ``/healthz``) is bound before that line; its
address is in the ``start`` log event. A request head must arrive within ``head_timeout``
(``renderer.headtimeout``). SIGHUP reads the configuration again (the file, with the
environment and flags of the start) and applies what can change while serving
(``renderer.reload``); a file that cannot be used is refused and logged, and the running
configuration stays.
SIGTERM or SIGINT stops accepting connections, lets in-flight requests and renders finish
(up to ``shutdown_timeout``), shuts the worker pool down and returns 0. Logs are JSON lines
on stderr (``renderer.logs``).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson
from aiohttp import web

from pixring.config import ConfigError, Loader, Table
from pixring.wire import MAX_REQUEST_HEAD, MAX_TARGET_LENGTH
from renderer.config import TABLE, settings_from
from renderer.settings import RendererSettings

__all__ = ["ACCEPTED_HEADS", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, table: Table = TABLE) -> None:
    """The ``pixring renderer`` flags: one per field of ``table``, with ``--config`` and ``--print-config``."""
    table.add_arguments(parser)


ServingHook = Callable[[str, int], AbstractAsyncContextManager[None]]
# Given every value the table loaded, the hook to serve under (None: none). The composition
# root passes one that registers with service discovery from fields it added to the table.
Registration = Callable[[Mapping[str, Any]], ServingHook | None]


def run(args: argparse.Namespace, *, table: Table = TABLE, registration: Registration | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean stop, 1 if it cannot listen, 2 for bad settings.

    ``table`` is the renderer's own (``renderer.config.TABLE``) or one that holds its fields
    and more. The hook ``registration`` returns is entered once the port is bound and left,
    on shutdown, *before* the listener stops accepting: the composition root uses it to
    register with service discovery and deregister first, so balancers stop sending here
    while in-flight requests still finish.
    """
    loader = Loader(table, args)
    try:
        values = loader.load()
        settings = settings_from(values)
        origin = settings.origin
        generate = isinstance(origin, Path) and (values["samples"] or values["origin"] is None)
        if isinstance(origin, str) and values["samples"]:
            raise ValueError("samples needs a directory origin, not a URL")
        if isinstance(origin, Path) and not generate and not origin.is_dir():
            raise ValueError(f"origin {origin}: not a directory")
        while_serving = registration(values) if registration is not None else None
    except (ConfigError, ValueError) as exc:
        print(f"pixring renderer: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "print_config", False):
        sys.stdout.write(orjson.dumps(table.printable(values), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if generate:
        from renderer.samples import ensure_samples

        try:
            ensure_samples(origin)  # type: ignore[arg-type]
        except OSError as exc:
            print(f"pixring renderer: origin {origin}: {exc}", file=sys.stderr)
            return 2
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(settings, values, loader, while_serving))


# Every request head the balancer forwards at its defaults: a target of up to its
# max_request_line (8 KiB), a head of up to its max_header_bytes (16 KiB), plus the
# fields pixring adds. aiohttp's own limits (8190-byte lines and fields, 128 fields)
# would answer some requests the balancer accepted with a plain-text 400.
ACCEPTED_HEADS: dict[str, int] = {"max_line_size": MAX_TARGET_LENGTH + 64, "max_field_size": MAX_REQUEST_HEAD + 512,
                                  "max_headers": MAX_REQUEST_HEAD // 5 + 16}


# Idle keep-alive connections are kept this long: longer than the balancer's pool keeps an
# idle connection (pool_idle_timeout, 30 s), so the balancer is the one that closes them.
KEEPALIVE_TIMEOUT = 75.0


async def _serve(
    settings: RendererSettings, values: Mapping[str, Any], loader: Loader, while_serving: ServingHook | None
) -> int:
    from pixring.sdnotify import Notifier
    from renderer.app import RENDERER_KEY, make_admin_app, make_app
    from renderer.headtimeout import HeadTimedSite, head_complete
    from renderer.logs import JsonAccessLogger, QuietProbesAccessLogger, log_event

    notify = Notifier()  # Type=notify under systemd: started once it listens (and is registered)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    app = make_app(settings)
    app.middlewares.append(head_complete)
    logger_class = JsonAccessLogger if settings.log_probes else QuietProbesAccessLogger
    # handler_cancellation: a request whose client went away (the balancer gave up) has its
    # handler cancelled, and with the last one waiting, the render (renderer.singleflight).
    options: dict[str, object] = {"access_log_class": logger_class, "handler_cancellation": True,
                                  "keepalive_timeout": KEEPALIVE_TIMEOUT, **ACCEPTED_HEADS}
    if not settings.access_log:
        options["access_log"] = None
    runner = web.AppRunner(app, shutdown_timeout=values["shutdown_timeout"], **options)  # type: ignore[arg-type]
    await runner.setup()  # starts and warms the worker pool
    admin_runner = web.AppRunner(make_admin_app(app), access_log=None)
    await admin_runner.setup()
    host, port = values["listen"].host, values["listen"].port
    admin_host, admin_port = values["admin"].host, values["admin"].port
    try:
        site = HeadTimedSite(runner, host, port, settings.head_timeout)
        admin_site = web.TCPSite(admin_runner, admin_host, admin_port, reuse_address=True)
        for listener, (where, number) in ((site, (host, port)), (admin_site, (admin_host, admin_port))):
            try:
                await listener.start()
            except OSError as exc:
                reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
                print(f"pixring renderer: cannot listen on {_format(where, number)}: {reason}", file=sys.stderr)
                return 1
        bound_host, bound_port = runner.addresses[0][:2]
        admin_bound = admin_runner.addresses[0][:2]
        log_event("start", listen=_format(bound_host, bound_port), admin=_format(*admin_bound),
                  origin=str(settings.origin), disk_cache=str(settings.disk_cache) if settings.disk_cache else None)
        listening = f"listening on http://{_format(bound_host, bound_port)}"
        serving = listening + (", registered" if while_serving is not None else "")  # what systemd shows
        running = dict(values)
        reloads: list[asyncio.Task[None]] = []

        async def reload() -> None:
            """SIGHUP: the configuration again; what can change while serving is applied."""
            from renderer.reload import apply

            notify.reloading("reloading the configuration")
            try:
                fresh = loader.load()
                applied = await apply(app[RENDERER_KEY], settings_from(fresh))
            except (ConfigError, ValueError, OSError) as exc:
                log_event("reload_refused", error=str(exc))
            else:
                changed = [name for name in running if fresh[name] != running[name]]
                running.update({name: fresh[name] for name in applied})
                log_event("reload", applied=list(applied),
                          needs_restart=[name for name in changed if name not in applied])
            notify.ready(serving)

        def on_sighup() -> None:  # one reload at a time, in the order the signals came
            previous = reloads[-1] if reloads else None

            async def after_previous() -> None:
                if previous is not None:
                    await previous
                await reload()

            reloads.append(loop.create_task(after_previous(), name="renderer-reload"))

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        if while_serving is None:
            print(f"pixring renderer {listening}", flush=True)
            notify.ready(serving)
            await stop.wait()
            notify.stopping("finishing in-flight renders")
        else:
            try:
                async with while_serving(bound_host, bound_port):
                    print(f"pixring renderer {listening}", flush=True)
                    notify.ready(serving)
                    await stop.wait()
                    notify.stopping("deregistering, then finishing in-flight renders")
            except Exception as exc:  # registration refused: say so, do not serve unseen
                print(f"pixring renderer: {exc}", file=sys.stderr)
                return 1
        loop.remove_signal_handler(signal.SIGHUP)
        await asyncio.gather(*reloads, return_exceptions=True)
        log_event("stopping")
    finally:
        # Stops accepting, waits for in-flight requests, then the pool (cleanup context).
        await runner.cleanup()
        await admin_runner.cleanup()
    log_event("stopped")
    return 0


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
