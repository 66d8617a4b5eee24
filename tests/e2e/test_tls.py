"""TLS on the public listener: a request over TLS through a real balancer, and a
certificate replaced and reloaded on SIGHUP while requests keep coming."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import threading
import time

from loadtest.certs import self_signed
from loadtest.fleet import wait_until
from tests.e2e.faultkit import FaultFleet


def fetch(port: int, target: str, cafile: str | None = None) -> tuple[str, bytes, str]:
    """One request on a new TLS connection: (ALPN protocol, the raw answer, the server
    certificate's fingerprint)."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1" if cafile else None) as tls:
            der = tls.getpeercert(binary_form=True) or b""
            tls.sendall(f"GET {target} HTTP/1.1\r\nHost: img.test\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return tls.selected_alpn_protocol() or "", answer, hashlib.sha256(der).hexdigest()


def fingerprint(cert_path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_path.read_text())).hexdigest()


def test_tls_requests_and_a_certificate_reloaded_on_sighup_without_a_dropped_request(tmp_path):
    first_cert, first_key = self_signed(tmp_path / "first", "first")
    second_cert, second_key = self_signed(tmp_path / "second", "second")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(first_cert, live_cert)
    shutil.copy(first_key, live_key)
    with FaultFleet(tmp_path / "logs") as fleet:
        nodes = fleet.fault_nodes(["n1"])
        balancer = fleet.balancer(nodes, workers=1, extra=["--tls-cert", str(live_cert), "--tls-key", str(live_key)])
        assert wait_until(lambda: "pixring balancer ready: https://127.0.0.1:" in balancer.log(), 10)

        alpn, answer, seen = fetch(balancer.port, "/a.jpg?w=10", cafile=str(first_cert))
        assert alpn == "http/1.1" and seen == fingerprint(first_cert)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["forwarded_proto"] == "https"

        # Plain HTTP on the TLS port is no request pixring answers.
        with socket.create_connection(("127.0.0.1", balancer.port), timeout=10) as plain:
            plain.sendall(b"GET /a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert not plain.recv(100).startswith(b"HTTP/1.1 200")
            except ConnectionResetError:
                pass

        results: list[tuple[str, int]] = []  # (certificate fingerprint, status), in order
        failures: list[str] = []
        stop = threading.Event()

        def keep_asking() -> None:
            i = 0
            while not stop.is_set() and i < 2000:
                i += 1
                try:
                    _, answer, seen = fetch(balancer.port, f"/k{i}.jpg")
                    results.append((seen, int(answer.split(b" ", 2)[1])))
                except (OSError, ValueError, IndexError) as exc:
                    failures.append(repr(exc))

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            assert wait_until(lambda: len(results) >= 5, 20)
            # Replace the files as a deploy tool would (each renamed into place), then reload.
            for source, live in ((second_cert, live_cert), (second_key, live_key)):
                shutil.copy(source, str(live) + ".new")
                os.replace(str(live) + ".new", live)
            balancer.send(signal.SIGHUP)
            assert wait_until(lambda: results and results[-1][0] == fingerprint(second_cert), 20), \
                "the new certificate was never served"
            settled = len(results)
            assert wait_until(lambda: len(results) >= settled + 5, 20)
        finally:
            stop.set()
            asker.join(timeout=30)
        assert not failures, failures[:3]
        assert all(status == 200 for _, status in results)
        served = [seen for seen, _ in results]
        first, second = fingerprint(first_cert), fingerprint(second_cert)
        assert set(served) == {first, second}
        switch = served.index(second)
        assert all(seen == first for seen in served[:switch]) and all(seen == second for seen in served[switch:])
