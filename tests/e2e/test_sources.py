"""Signed URLs and sources through a real balancer process, in front of fault nodes that
count what reaches them and echo the Host and X-Forwarded-Host they were sent."""

from __future__ import annotations

import http.client
import json
import subprocess
import time

import pytest

from loadtest.fleet import PIXRING, http as http_request, wait_until
from pixring.signing import sign
from tests.e2e.faultkit import FaultFleet

ACME_TOKEN = "acme-Sign-7f3a9c"
ADMIN_TOKEN = "admin-Tok-51b2"


def get(port: int, target: str, host: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target, headers={"Host": host})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def answered(node) -> int:
    """Image requests the node has answered."""
    return json.loads(http_request("GET", node.url + "/_fault")[2])["answers"].get("200", 0)


@pytest.fixture(scope="module")
def tenant_balancer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sources")
    (tmp / "acme-token").write_text(ACME_TOKEN + "\n")
    (tmp / "admin-token").write_text(ADMIN_TOKEN + "\n")
    config = tmp / "pixring.toml"
    config.write_text(f'''
unknown_host = "refuse"
admin_token_file = "{tmp / 'admin-token'}"

[[sources]]
name = "acme"
hosts = ["img.acme.test"]
sign_token_file = "{tmp / 'acme-token'}"

[[sources]]
name = "beta"
hosts = ["img.beta.test", "cdn.beta.test"]
profile = "generic"
upstream_host = "beta.internal"
''')
    with FaultFleet(tmp / "logs") as fleet:
        nodes = fleet.fault_nodes(["n1"])
        balancer = fleet.balancer(nodes, workers=1, extra=["--config", str(config),
                                                           "--access-log", str(tmp / "access.log")])
        yield balancer, nodes["n1"], config, tmp


def test_a_bad_signature_is_refused_before_any_upstream_work(tenant_balancer):
    balancer, node, _, _ = tenant_balancer
    signed = sign("/logo.png?w=400&h=300", ACME_TOKEN, expires=int(time.time()) + 600)
    before = answered(node)
    status, body = get(balancer.port, signed, "img.acme.test")
    assert status == 200 and body["path"] == "/logo.png?h=300&w=400"  # s and expires are not forwarded
    assert answered(node) == before + 1
    expired = sign("/logo.png?w=400", ACME_TOKEN, expires=int(time.time()) - 1)
    for target, reason in [
        (signed.replace("/logo.png", "/other.png"), "does not match"),
        (signed.replace("w=400", "w=500"), "does not match"),
        (signed.replace("w=400&h=300", "h=300&w=400"), "does not match"),  # the query as sent
        (expired, "expired"),
        ("/logo.png?w=400", "not signed"),
    ]:
        status, body = get(balancer.port, target, "img.acme.test")
        assert status == 403 and reason in body["error"], (target, body)
    assert answered(node) == before + 1  # none of them reached a node


def test_two_hosts_same_path_are_two_keys_and_the_node_sees_each_host(tenant_balancer):
    balancer, node, _, tmp = tenant_balancer
    status, acme = get(balancer.port, sign("/shared/logo.png", ACME_TOKEN), "img.acme.test")
    assert status == 200
    assert acme["forwarded_host"] == "img.acme.test" and acme["host"] == node.url.split("//")[1]
    status, beta = get(balancer.port, "/shared/logo.png", "cdn.beta.test:8080")
    assert status == 200
    assert beta["forwarded_host"] == "cdn.beta.test:8080" and beta["host"] == "beta.internal"
    status, body = get(balancer.port, "/shared/logo.png", "unknown.test")
    assert status == 404 and "no source" in body["error"]
    # The access log names each request's key: the source's namespace before the path.
    assert wait_until(lambda: (tmp / "access.log").exists() and "beta/shared/logo.png" in (tmp / "access.log").read_text(), 10)
    keys = {json.loads(line)["key"] for line in (tmp / "access.log").read_text().splitlines()
            if "/shared/logo.png" in line}
    assert {"acme/shared/logo.png", "beta/shared/logo.png"} <= keys


def test_status_and_metrics_count_per_source_and_no_secret_leaks(tenant_balancer):
    balancer, _, config, tmp = tenant_balancer
    get(balancer.port, "/count.png", "img.beta.test")
    get(balancer.port, "/count.png", "img.acme.test")  # unsigned: refused
    assert wait_until(lambda: balancer.status()["sources"].get("acme", {}).get("refused"), 5)
    status = balancer.status()
    assert status["sources"]["beta"]["admitted"] >= 1 and status["sources"]["acme"]["refused"] >= 1
    assert status["sources"]["-"]["refused"] >= 0
    assert balancer.metrics().value("pixring_source_requests_total", source="beta", result="admitted") >= 1
    printed = subprocess.run([*PIXRING, "balancer", "--config", str(config), "--node", "http://127.0.0.1:9",
                              "--print-config"],
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    scrape = http_request("GET", balancer.admin + "/metrics")[2].decode()
    texts = {"/status": json.dumps(status), "--print-config": printed.stdout, "/metrics": scrape,
             "the balancer's log": balancer.log(), "the access log": (tmp / "access.log").read_text()}
    for where, text in texts.items():
        for secret in (ACME_TOKEN, ADMIN_TOKEN):
            assert secret not in text, f"a secret in {where}"
    assert json.loads(printed.stdout)["sources"][0]["signed"] is True


def test_a_client_past_the_render_limit_gets_429_with_retry_after_and_no_render(tmp_path):
    with FaultFleet(tmp_path / "logs") as fleet:
        nodes = fleet.fault_nodes(["n1"])
        # The fault node sends no cache-status header: every answer counts as a render.
        balancer = fleet.balancer(nodes, workers=1, extra=["--render-limit", "2", "--render-limit-window", "300"])
        assert [get(balancer.port, f"/r{i}.png", "img.test")[0] for i in range(2)] == [200, 200]
        before = answered(nodes["n1"])
        conn = http.client.HTTPConnection("127.0.0.1", balancer.port, timeout=10)
        conn.request("GET", "/r3.png", headers={"Host": "img.test", "X-Forwarded-For": "198.51.100.1"})
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        # X-Forwarded-For from a peer that is no trusted proxy changes nothing.
        assert response.status == 429 and 0 < int(response.getheader("Retry-After")) <= 300
        assert "too many renders from 127.0.0.1" in body["error"]
        assert answered(nodes["n1"]) == before
