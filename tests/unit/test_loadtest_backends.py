"""The configs of the benchmark's servers: rendered right, and accepted by the real programs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest.backends import (
    BODY_BYTES,
    backend_config,
    haproxy_config,
    nginx_balancer_config,
    pixring_argv,
    render,
)
from loadtest.certs import self_signed

PORTS = [18001, 18002, 18003]


def test_render_fills_placeholders_and_refuses_gaps_and_leftovers():
    assert render("a {{x}} b {{y}} {{x}}", {"x": 1, "y": "z"}) == "a 1 b z 1"
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        render("{{x}} {{y}}", {"x": 1})
    with pytest.raises(ValueError, match=r"unused \['z'\]"):
        render("{{x}}", {"x": 1, "z": 2})


def test_backends_answer_every_port_with_the_fixed_body(tmp_path):
    config = backend_config(tmp_path, PORTS)
    for port in PORTS:
        assert f"listen 127.0.0.1:{port};" in config
    body = re.search(r'return 200 "([^"]*)";', config).group(1)
    assert len(body) == BODY_BYTES
    assert "default_type image/jpeg;" in config and "access_log off;" in config
    with pytest.raises(ValueError):
        backend_config(tmp_path, [])


def test_nginx_balancer_hashes_the_request_uri_consistently_with_keepalive(tmp_path):
    config = nginx_balancer_config(tmp_path, 18000, PORTS, tmp_path / "access.log")
    assert "hash $request_uri consistent;" in config
    assert re.search(r"keepalive \d+;", config)
    assert 'proxy_set_header Connection "";' in config and "proxy_http_version 1.1;" in config
    assert f"access_log {tmp_path / 'access.log'} " in config
    assert all(f"server 127.0.0.1:{p};" in config for p in PORTS)
    assert "listen 127.0.0.1:18000;" in config
    assert "worker_processes 1;" in config


def test_nginx_with_two_workers_gives_each_its_own_socket_and_files(tmp_path):
    config = nginx_balancer_config(tmp_path, 18000, PORTS, tmp_path / "access.log", workers=2, name="nginx-2w-balancer")
    assert "worker_processes 2;" in config and "listen 127.0.0.1:18000 reuseport;" in config
    assert f"pid {tmp_path}/nginx-2w-balancer.pid;" in config


def test_the_tls_rows_share_one_certificate(tmp_path):
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    config = nginx_balancer_config(tmp_path, 18000, PORTS, tmp_path / "access.log", tls=(cert, key))
    assert "listen 127.0.0.1:18000 ssl;" in config
    assert f"ssl_certificate {cert};" in config and f"ssl_certificate_key {key};" in config
    argv = pixring_argv(["pixring"], port=18000, admin_port=18010, backend_ports=PORTS, workers=1,
                        access_log=tmp_path / "a.log", tls=(cert, key))
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs["--tls-cert"] == str(cert) and pairs["--tls-key"] == str(key)


def test_haproxy_hashes_the_whole_uri_consistently_and_logs():
    config = haproxy_config(18000, PORTS)
    assert "balance uri whole" in config and "hash-type consistent" in config
    assert "option httplog" in config and "log stdout" in config
    assert [f"server b{i} 127.0.0.1:{p}" in config for i, p in enumerate(PORTS, 1)] == [True] * 3


def test_pixring_argv_follows_the_cli_contract(tmp_path):
    argv = pixring_argv(["pixring"], port=18000, admin_port=18010, backend_ports=PORTS, workers=2,
                        access_log=tmp_path / "a.log")
    assert argv[:2] == ["pixring", "balancer"]
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs["--listen"] == "127.0.0.1:18000" and pairs["--admin"] == "127.0.0.1:18010"
    assert pairs["--workers"] == "2" and pairs["--profile"] == "imgix"
    nodes = [argv[i + 1] for i, a in enumerate(argv) if a == "--node"]
    assert nodes == [f"b{i}=http://127.0.0.1:{p}" for i, p in enumerate(PORTS, 1)]


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
@pytest.mark.parametrize("which", ["backends", "balancer", "balancer-2w", "balancer-tls"])
def test_nginx_accepts_the_configs(tmp_path: Path, which: str):
    if which == "backends":
        text = backend_config(tmp_path, PORTS)
    else:
        tls = self_signed(tmp_path / "tls") if which.endswith("tls") else None
        text = nginx_balancer_config(tmp_path, 18000, PORTS, tmp_path / "access.log", workers=which.count("2w") + 1,
                                     tls=tls)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    done = subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-c", str(path), "-e", str(tmp_path / "err.log")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_config(tmp_path: Path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(18000, PORTS))
    done = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
