"""The ``pixring`` command: the composition root.

This is the one place that wires the balancer, discovery and the reference
renderer together. The subcommand names and flags are a contract: scripts and the
Ansible roles call them.

    pixring balancer  the load balancer (supervisor + workers)
    pixring renderer  the reference render node
    pixring up        a local cluster: N renderers on sample images + a balancer
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pixring import __version__

__all__ = ["main", "build_parser"]


def _balancer_arguments(parser: argparse.ArgumentParser) -> None:
    from balancer.config import FIELDS, env_name, flag_name

    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file; PIXRING_* environment variables override it and flags override both "
        "(default: none)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration as JSON and exit",
    )
    for field in FIELDS:
        default = field.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        default = default if default not in ("", None) else "none"
        parser.add_argument(
            flag_name(field),
            dest=field.name,
            metavar=field.metavar or None,
            action="append" if field.repeatable else "store",
            default=None,
            help=f"{field.help} (default: {default}; env {env_name(field)})",
        )


def _run_balancer(args: argparse.Namespace) -> int:
    import os
    import orjson

    from balancer.config import FIELDS, ConfigError, load_config

    flags = {field.name: getattr(args, field.name) for field in FIELDS if getattr(args, field.name) is not None}
    config_file = args.config or os.environ.get("PIXRING_CONFIG")
    environ = dict(os.environ)

    def reload_config():
        """SIGHUP: the file again, with the environment and flags of the start."""
        fresh = load_config(config_file=config_file, environ=environ, flags=flags)
        fresh.check_sources()
        return fresh

    try:
        config = reload_config()
    except ConfigError as exc:
        print(f"pixring balancer: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(orjson.dumps(config.summary(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    from balancer.supervisor import run_balancer

    return run_balancer(config, reload_config if config_file else None)


def _registration_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Consul registration")
    group.add_argument("--consul", action="store_true",
                       help="register with the local Consul agent once listening, deregister on shutdown (default: off)")
    group.add_argument("--consul-addr", metavar="ADDR", default=None,
                       help="Consul agent HOST:PORT or URL (default: CONSUL_HTTP_ADDR, then 127.0.0.1:8500)")
    group.add_argument("--consul-service", metavar="NAME", default="pixring-renderer",
                       help="service name to register under (default: pixring-renderer)")
    group.add_argument("--consul-id", metavar="ID", default=None,
                       help="service ID, the node's identity on every ring (default: <service>-<advertise>-<port>)")
    group.add_argument("--consul-tag", metavar="TAG", action="append", default=[],
                       help="a service tag; repeat for more (default: none)")
    group.add_argument("--advertise", metavar="HOST", default=None,
                       help="address balancers and the agent reach this node at (default: the --listen host, "
                       "or this host's name when listening on all addresses)")
    group.add_argument("--weight", type=float, default=1.0, metavar="W",
                       help="share of the keyspace relative to other nodes; 0 drains (default: 1)")
    group.add_argument("--consul-check-interval", type=float, default=10.0, metavar="S",
                       help="seconds between the agent's HTTP checks of /healthz (default: 10)")
    group.add_argument("--consul-deregister-after", type=float, default=600.0, metavar="S",
                       help="seconds a critical node stays registered before the agent removes it (default: 600)")


def _consul_registration(args: argparse.Namespace):
    """The hook that keeps the renderer registered while it serves."""
    import socket

    from discovery.register import ServiceRegistration, registered

    def while_serving(host: str, port: int):
        advertise = args.advertise or (socket.getfqdn() if host in ("0.0.0.0", "::", "") else host)
        registration = ServiceRegistration(
            name=args.consul_service,
            service_id=args.consul_id or f"{args.consul_service}-{advertise}-{port}".replace(":", "-"),
            address=advertise,
            port=port,
            tags=tuple(args.consul_tag),
            weight=args.weight,
            check_interval_s=args.consul_check_interval,
            deregister_critical_after_s=args.consul_deregister_after,
        )
        return registered(registration, addr=args.consul_addr)

    return while_serving


def _run_renderer(args: argparse.Namespace) -> int:
    from renderer.cli import run

    return run(args, while_serving=_consul_registration(args) if args.consul else None)


def _run_up(args: argparse.Namespace) -> int:
    from pixring.up import run_up

    return run_up(args)


_EPILOG = """\
`pixring COMMAND --help` explains every option of a command and its default.
The manual is docs/ in pixring's source; docs/README.md lists it. To start:
  docs/configuration.md   every balancer setting: TOML field, flag, environment
  docs/operations.md      the admin endpoints, signals, what to look at when
  docs/renderer.md        the reference renderer, and what a render node must accept
"""


def build_parser() -> argparse.ArgumentParser:
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
    _balancer_arguments(balancer)
    balancer.set_defaults(run=_run_balancer)

    from renderer.cli import add_arguments as renderer_arguments

    renderer = commands.add_parser(
        "renderer",
        help="run the reference render node",
        description="Run the reference renderer: imgix-style image rendering from an origin directory.",
    )
    renderer_arguments(renderer)
    _registration_arguments(renderer)
    renderer.set_defaults(run=_run_renderer)

    from pixring.up import add_arguments as up_arguments

    up = commands.add_parser(
        "up",
        help="run a local cluster: renderers on samples behind a balancer",
        description="Start N reference renderers on free loopback ports and a balancer in front of them; "
        "Ctrl-C stops everything.",
    )
    up_arguments(up)
    up.set_defaults(run=_run_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except KeyboardInterrupt:
        # Ctrl-C before a command has set its own handlers (during the imports, say):
        # the shell's convention for death by SIGINT, without a traceback.
        return 128 + 2


if __name__ == "__main__":
    sys.exit(main())
