"""The ``pixring`` command, in the composition root (``pixring.cli``).

It puts discovery's fields into the commands' tables, chooses the balancer's membership
source (``pixring.cli.sources``), has the supervisor start ``pixring.cli.worker`` as the
balancer's worker processes and registers a renderer with Consul. The subcommand names
and flags are a contract: scripts and the Ansible roles call them.

    pixring balancer  the load balancer (supervisor + workers)
    pixring renderer  the reference render node
    pixring up        a local cluster: N renderers on sample images + a balancer
    pixring sign      a signed image URL (imgix's scheme), for scripts and tests
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pixring import __version__

__all__ = ["main", "build_parser"]


def _run_balancer(args: argparse.Namespace) -> int:
    import orjson

    from balancer.config import TABLE, ConfigError, load_config
    from balancer.supervisor import run_balancer
    from pixring.cli import worker
    from pixring.cli.sources import check_sources
    from pixring.config import Loader

    loader = Loader(TABLE, args)

    def reload_config():
        """SIGHUP: the file again, with the environment and flags of the start."""
        fresh = load_config(config_file=loader.config_file, environ=loader.environ, flags=loader.flags)
        check_sources(fresh)
        return fresh

    try:
        config = reload_config()
    except ConfigError as exc:
        print(f"pixring balancer: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(orjson.dumps(config.summary(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    return run_balancer(config, reload_config if loader.config_file else None, worker_command=worker.COMMAND)


def _renderer_table():
    """The renderer's fields and discovery's registration fields: ``pixring renderer`` is
    both, and only here are the two put together."""
    from discovery.settings import REGISTRATION_FIELDS
    from pixring.config import Table
    from renderer.config import FIELDS, TABLE

    return Table((*FIELDS, *REGISTRATION_FIELDS), TABLE.env_prefix)


def _consul_registration(values):
    """The hook that keeps the renderer registered while it serves, if ``consul`` is on."""
    import socket

    if not values["consul"]:
        return None
    from discovery.register import ServiceRegistration, registered

    def while_serving(host: str, port: int):
        advertise = values["advertise"] or (socket.getfqdn() if host in ("0.0.0.0", "::", "") else host)
        service = values["consul_service"]
        registration = ServiceRegistration(
            name=service,
            service_id=values["consul_id"] or f"{service}-{advertise}-{port}".replace(":", "-"),
            address=advertise,
            port=port,
            tags=tuple(values["consul_tag"]),
            weight=values["weight"],
            check_interval_s=values["consul_check_interval"],
            deregister_critical_after_s=values["consul_deregister_after"],
        )
        return registered(registration, addr=values["consul_addr"] or None)

    return while_serving


def _run_renderer(args: argparse.Namespace) -> int:
    from renderer.cli import run

    return run(args, table=_renderer_table(), registration=_consul_registration)


def _run_sign(args: argparse.Namespace) -> int:
    import os
    import time

    from pixring import signing
    from pixring.config import read_secret_file

    given = [name for name, value in (("--token", args.token), ("--token-file", args.token_file)) if value]
    if len(given) > 1:
        print("pixring sign: give --token or --token-file, not both", file=sys.stderr)
        return 2
    try:
        token = args.token or (read_secret_file(args.token_file) if args.token_file else
                               os.environ.get("PIXRING_SIGN_TOKEN", ""))
    except ValueError as exc:
        print(f"pixring sign: --token-file: {exc}", file=sys.stderr)
        return 2
    if not token:
        print("pixring sign: no token: give --token-file FILE (or PIXRING_SIGN_TOKEN)", file=sys.stderr)
        return 2
    if args.expires is not None and args.expires_at is not None:
        print("pixring sign: give --expires or --expires-at, not both", file=sys.stderr)
        return 2
    expires = args.expires_at if args.expires_at is not None else (
        int(time.time()) + args.expires if args.expires is not None else None)
    if not (args.url.startswith("/") or "://" in args.url):
        print(f"pixring sign: {args.url!r} is neither a path starting with / nor an http(s) URL", file=sys.stderr)
        return 2
    print(signing.sign(args.url, token, expires=expires, mode=args.mode))
    return 0


def _run_up(args: argparse.Namespace) -> int:
    from pixring.cli.up import run_up

    return run_up(args)


_EPILOG = """\
`pixring COMMAND --help` explains every option of a command and its default.
The manual is docs/ in pixring's source; docs/README.md lists it. To start:
  docs/configuration.md   every balancer setting: TOML field, flag, environment
  docs/operations.md      the admin endpoints, signals, what to look at when
  docs/renderer.md        the reference renderer, and what a render node must accept
"""


def build_parser() -> argparse.ArgumentParser:
    from balancer.config import TABLE as balancer_table
    from pixring.cli.up import add_arguments as up_arguments

    parser = argparse.ArgumentParser(
        prog="pixring",
        description="A consistent-hashing load-balancing tier for image render fleets.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pixring {__version__}")
    # One line per command in `pixring --help`: keep each help under ~60 characters.
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    balancer = commands.add_parser(
        "balancer",
        help="run the load balancer: supervisor, workers, admin listener",
        description="Run the balancer: a supervisor, N workers on the public port, and the admin listener. "
        "Every option can also be set in the TOML file (--config) as name = value, or as PIXRING_<NAME>.",
    )
    balancer_table.add_arguments(balancer)
    balancer.set_defaults(run=_run_balancer)

    renderer = commands.add_parser(
        "renderer",
        help="run the reference render node",
        description="Run the reference renderer: imgix-style image rendering from an origin directory or URL. "
        "Every option can also be set in the TOML file (--config) as name = value, or as PIXRING_RENDERER_<NAME>; "
        "a SIGHUP applies the cache sizes and limits of a changed file.",
    )
    _renderer_table().add_arguments(renderer)
    renderer.set_defaults(run=_run_renderer)

    up = commands.add_parser(
        "up",
        help="run a local cluster: renderers on samples behind a balancer",
        description="Start N reference renderers on free loopback ports and a balancer in front of them; "
        "Ctrl-C stops everything.",
    )
    up_arguments(up)
    up.set_defaults(run=_run_up)

    from pixring.signing import MODES

    sign = commands.add_parser(
        "sign",
        help="print a signed image URL (imgix's signature scheme)",
        description="Print URL with its signature (s=...) appended: the lowercase hex MD5 of the token, the path "
        "and the query as written (imgix's scheme), or its HMAC-SHA256. Give the URL as clients will send it "
        "(escapes included): the signature covers the bytes.",
    )
    sign.add_argument("url", metavar="URL", help="an absolute URL or a path with its query, e.g. '/a.jpg?w=400'")
    sign.add_argument("--token-file", metavar="FILE", help="a file holding the signing token (default: the "
                      "environment variable PIXRING_SIGN_TOKEN)")
    sign.add_argument("--token", metavar="TOKEN", help="the token itself (visible in the process list: prefer "
                      "--token-file)")
    sign.add_argument("--expires", type=int, metavar="SECONDS", help="the URL expires this many seconds from now")
    sign.add_argument("--expires-at", type=int, metavar="UNIX", help="the URL expires at this Unix time")
    sign.add_argument("--mode", choices=MODES, default="md5", help="the signature: md5 (imgix's, the default) "
                      "or hmac-sha256")
    sign.set_defaults(run=_run_sign)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except KeyboardInterrupt:
        # Ctrl-C before a command has set its own handlers (during the imports, say):
        # the shell's convention for death by SIGINT, without a traceback.
        return 128 + 2
