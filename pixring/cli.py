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
            default = ",".join(map(str, default)) or "none"
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
    try:
        config = load_config(config_file=args.config or os.environ.get("PIXRING_CONFIG"), flags=flags)
        if not config.nodes:
            raise ConfigError("nodes: no render node given (use --node [ID=]URL, PIXRING_NODES or the config file)")
    except ConfigError as exc:
        print(f"pixring balancer: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(orjson.dumps(config.summary(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    from balancer.supervisor import run_balancer

    return run_balancer(config)


def _run_renderer(args: argparse.Namespace) -> int:
    from renderer.cli import run

    return run(args)


def _run_up(args: argparse.Namespace) -> int:
    from pixring.up import run_up

    return run_up(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixring",
        description="A consistent-hashing load-balancing tier for image render fleets.",
    )
    parser.add_argument("--version", action="version", version=f"pixring {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    balancer = commands.add_parser(
        "balancer",
        help="run the load balancer",
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
    renderer.set_defaults(run=_run_renderer)

    from pixring.up import add_arguments as up_arguments

    up = commands.add_parser(
        "up",
        help="run a local cluster: renderers on sample images behind a balancer",
        description="Start N reference renderers on free loopback ports and a balancer in front of them; "
        "Ctrl-C stops everything.",
    )
    up_arguments(up)
    up.set_defaults(run=_run_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
