"""The three fronts of the tier benchmark, as their operators configure them: nginx's and
HAProxy's config files (``loadtest/templates/tier-*``) and pixring's command line.

Pure: text and argument lists, no I/O (the runner writes them into the results folder and
starts them). The choices a competent operator makes are in the templates' comments; pixring
gets nothing but its listeners and its nodes, so every other option is its production default
(hot-key spreading, coalescing, bounded load, retries, health checks included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from loadtest.backends import TEMPLATES, render

__all__ = ["haproxy_config", "nginx_config", "pixring_argv"]

# nginx's passive health: a node failing 3 times within 10 s is left out for 10 s.
NGINX_MAX_FAILS = 3
NGINX_FAIL_TIMEOUT_S = 10


def nginx_config(run_dir: Path, port: int, nodes: Mapping[str, int], access_log: Path) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails={NGINX_MAX_FAILS} fail_timeout={NGINX_FAIL_TIMEOUT_S}s;"
                        for p in nodes.values())
    return render((TEMPLATES / "tier-nginx.conf").read_text(),
                  {"run_dir": run_dir, "port": port, "servers": servers, "access_log": access_log})


def haproxy_config(port: int, nodes: Mapping[str, int]) -> str:
    # Servers named after the nodes: the hash of a key depends on the server's id and
    # weight, not on its name, so the names only make the logs readable.
    servers = "\n".join(f"    server {name} 127.0.0.1:{p}" for name, p in nodes.items())
    return render((TEMPLATES / "tier-haproxy.cfg").read_text(), {"port": port, "servers": servers})


def pixring_argv(pixring: Sequence[str], port: int, admin_port: int, nodes: Mapping[str, int]) -> list[str]:
    argv = [*pixring, "balancer", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin_port}"]
    for name, p in nodes.items():
        argv += ["--node", f"{name}=http://127.0.0.1:{p}"]
    return argv
