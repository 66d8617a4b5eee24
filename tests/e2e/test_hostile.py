"""End to end: a corpus of hostile requests against a running balancer and reference renderers.

Real processes: two ``pixring renderer`` and one ``pixring balancer`` (``loadtest.fleet``).
Each attack goes over a raw socket, so bytes an HTTP client library would refuse to send
(NUL, overlong targets, malformed escapes, folded headers) are sent as they are. What
must hold for every one: the expected 4xx (never a 5xx), an answer rather than a hang
(each exchange has a socket timeout), no upstream request for what the balancer refuses
itself (its upstream-attempt counter does not move), and the renderers' memory stays
bounded. The renderer's own defences are attacked directly too: a slowloris against its
request-head timeout, a render whose client goes away. Times are printed, never asserted.
"""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pytest
from PIL import Image

from loadtest.fleet import Fleet, RenderNode, http, wait_until
from tests.e2e.proctree import descendants

pytestmark = pytest.mark.e2e

HEAD_TIMEOUT = 1.0
ANSWER_TIMEOUT = 30.0  # a hang fails the exchange; nothing here should take a second
PHOTO = "/photos/landscape-3000x2000.jpg"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    from renderer.samples import SAMPLES, ensure_samples

    origin = tmp_path_factory.mktemp("hostile-samples")
    ensure_samples(origin, [s for s in SAMPLES if s.name == PHOTO[1:]])
    # Just under 50 MP, the default source limit counted in pixels; as RGBA it weighs 65 MP
    # of RGB and decodes to 196 MB: refused from its header.
    out = io.BytesIO()
    Image.new("RGBA", (7000, 7000), (200, 10, 10, 128)).save(out, "PNG", compress_level=1)
    (origin / "rgba-7000.png").write_bytes(out.getvalue())
    return origin


@pytest.fixture(scope="module")
def tier(samples, tmp_path_factory):
    with Fleet(tmp_path_factory.mktemp("hostile-logs")) as fleet:
        nodes = fleet.renderers(["r1", "r2"], samples, extra=["--head-timeout", str(HEAD_TIMEOUT)])
        balancer = fleet.balancer(nodes, workers=1)
        yield nodes, balancer


def exchange(port: int, request: bytes, timeout: float = ANSWER_TIMEOUT) -> tuple[int, dict[str, str], bytes, float]:
    """Send ``request`` as it is; (status, headers, body, seconds) of the answer, read to
    the close (every request of the corpus says Connection: close)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    elapsed = time.perf_counter() - started
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1."), data[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode().lower()] = value.strip().decode()
    return int(lines[0].split()[1]), headers, body, elapsed


def request(target: bytes, method: bytes = b"GET", fields: bytes = b"") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: images.example\r\n" + fields + b"Connection: close\r\n\r\n"


# (name, raw request, expected statuses). Refused by the balancer itself: no node sees them.
REFUSED_BY_THE_BALANCER: list[tuple[str, bytes, set[int]]] = [
    ("malformed escape in the query", request(PHOTO.encode() + b"?w=%zz"), {400}),
    ("truncated escape", request(PHOTO.encode() + b"?w=4%4"), {400}),
    ("encoded NUL", request(b"/photos/%00.jpg"), {400}),
    ("raw NUL in the target", request(b"/photos/a\x00b.jpg"), {400}),
    ("encoded CR LF in the path (response splitting)", request(b"/photos/a%0D%0ASet-Cookie:x.jpg"), {400}),
    ("overlong target", request(b"/" + b"a" * 9000), {414}),
    ("a thousand query parts", request(PHOTO.encode() + b"?" + b"w=1&" * 1000), {400}),
    ("a bad value for a known parameter", request(PHOTO.encode() + b"?w=abc"), {400}),
    ("a climb above the root", request(b"/photos/../../etc/passwd"), {400}),
    ("an encoded climb", request(b"/photos/%2e%2e/%2E%2E/etc/passwd"), {400}),
    ("absolute form with userinfo", request(b"http://user@images.example/x.jpg"), {400}),
    ("authority form", request(b"images.example:443", b"CONNECT"), {400, 405}),
    ("an oversized head", request(PHOTO.encode(), fields=b"X-Junk: " + b"a" * 20000 + b"\r\n"), {431}),
    ("header injection by obs-fold", request(PHOTO.encode(), fields=b"X-A: 1\r\n Injected: 2\r\n"), {400}),
    ("two Host fields", request(PHOTO.encode(), fields=b"Host: evil.example\r\n"), {400}),
    ("smuggling: Content-Length and chunked",
     request(PHOTO.encode(), b"POST", b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"), {400}),
]

# Forwarded to a node, which refuses them (or serves them) without a 5xx.
ANSWERED_BY_A_NODE: list[tuple[str, bytes, set[int]]] = [
    ("the 8192 px PNG (67 MP)", request(PHOTO.encode() + b"?w=8192&h=8192&fit=scale&fm=png"), {400}),
    ("the 8192 px PNG, HEAD", request(PHOTO.encode() + b"?w=8192&h=8192&fit=scale&fm=png", b"HEAD"), {400}),
    ("a HEAD of a render not made yet (never encoded)", request(PHOTO.encode() + b"?w=71", b"HEAD"), {200}),
    ("dpr pushing past the budget", request(PHOTO.encode() + b"?w=4096&h=4096&dpr=2&fit=crop"), {400}),
    ("a 7000x7000 RGBA PNG under the pixel count", request(b"/rgba-7000.png?w=100"), {413}),
    ("the renderer's metrics through the balancer", request(b"/metrics"), {404}),
    ("8 KiB of escapes in the path", request(b"/" + b"%41" * 2700), {400}),  # the renderer: path too long
    ("overlong UTF-8 dots", request(b"/%C0%AE%C0%AE/%C0%AE%C0%AE/etc/passwd"), {400}),
    ("fullwidth dots", request(b"/photos/%EF%BC%8E%EF%BC%8E/landscape-3000x2000.jpg"), {404}),
    ("encoded slashes climbing", request(b"/photos/..%2F..%2Fetc%2Fpasswd"), {400, 404}),
    ("repeated and conflicting parameters",
     request(PHOTO.encode() + b"?w=abc&w=100&width=90&W=80&fm=png&fm=webp"), {200}),
    ("spoofed forwarding fields", request(PHOTO.encode() + b"?w=70",
                                          fields=b"X-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
                                                 b"X-Forwarded-Port: 1\r\nX-Pixring-Node: evil\r\n"), {200}),
]


def renderer_rss_kib(node: RenderNode) -> int:
    total = 0
    for pid in {node.popen.pid, *descendants(node.popen.pid)}:  # type: ignore[union-attr]
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def attempts(balancer) -> float:  # type: ignore[no-untyped-def]
    return balancer.metrics().value("pixring_upstream_attempts_total")


def test_hostile_requests_get_their_4xx_and_never_cost_the_tier(tier) -> None:
    nodes, balancer = tier
    rss_before = {name: renderer_rss_kib(node) for name, node in nodes.items()}
    wait_until(lambda: attempts(balancer) >= 0, 5)
    before = attempts(balancer)
    seen: list[tuple[str, int, float]] = []
    for name, raw, expected in REFUSED_BY_THE_BALANCER:
        status, _, body, elapsed = exchange(balancer.port, raw)
        seen.append((name, status, elapsed))
        assert status in expected, (name, status, body[:300])
    # The workers report their counters once a second: wait past a report, then compare.
    time.sleep(2.5)
    assert attempts(balancer) == before, "a request the balancer refuses never reaches a node"

    for name, raw, expected in ANSWERED_BY_A_NODE:
        status, headers, body, elapsed = exchange(balancer.port, raw)
        seen.append((name, status, elapsed))
        assert status in expected, (name, status, body[:300])
        if status >= 400 and raw.startswith(b"GET"):
            assert body, name  # a 4xx says what is wrong
    for name, status, elapsed in seen:
        print(f"{status}  {elapsed * 1000:8.1f} ms  {name}")
        assert status < 500, name
    rss_after = {name: renderer_rss_kib(node) for name, node in nodes.items()}
    print("renderer RSS (KiB, with workers):", rss_before, "->", rss_after)
    for name in nodes:
        # The refused renders never allocated their canvas (256 MiB for 8192x8192 RGBA) nor
        # decoded the 196 MB source.
        assert rss_after[name] - rss_before[name] < 150 * 1024, name


def test_clamped_values_are_one_cache_entry_through_the_tier(tier) -> None:
    _, balancer = tier
    first = exchange(balancer.port, request(PHOTO.encode() + b"?w=333&q=100"))
    assert first[0] == 200 and first[1]["x-render-cache"] in ("miss", "hit")
    for same in (b"?w=333&q=1000", b"?w=333&q=2000&rot=720", b"?q=100.0&w=333&blur=-5"):
        status, headers, _, _ = exchange(balancer.port, request(PHOTO.encode() + same))
        assert status == 200 and headers["x-render-cache"] == "hit", same
        assert headers["etag"] == first[1]["etag"]


def test_a_slowloris_is_cut_off_by_the_renderers_head_timeout(tier) -> None:
    nodes, _ = tier
    node = nodes["r1"]
    sockets = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", node.port), timeout=ANSWER_TIMEOUT)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(sock)
        started = time.perf_counter()
        for sock in sockets:
            sock.sendall(b"a")  # trickling bytes does not restart the clock
        closed = 0
        for sock in sockets:
            try:
                closed += sock.recv(1024) == b""  # the renderer closed it, answering nothing
            except ConnectionResetError:
                closed += 1
        print(f"20 slow heads closed after {time.perf_counter() - started:.2f} s (head timeout {HEAD_TIMEOUT} s)")
        assert closed == 20
        # A client that sends its head at once is served as before.
        assert http("GET", node.url + "/healthz")[0] == 200
    finally:
        for sock in sockets:
            sock.close()


def test_a_render_whose_client_went_away_is_cancelled(tier) -> None:
    nodes, _ = tier
    node = nodes["r2"]
    abandoned = node.metrics().value("pixring_renderer_abandoned_total")
    renders = node.metrics().value("pixring_renderer_renders_total")
    # Within the budget (16 MP), but seconds of work: a PNG of a large blurred upscale.
    slow = request(PHOTO.encode() + b"?w=4000&h=4000&fit=scale&blur=400&fm=png")
    with socket.create_connection(("127.0.0.1", node.port)) as sock:
        sock.sendall(slow)
        time.sleep(0.5)  # the render is under way; the client gives up
    waited = wait_until(lambda: node.metrics().value("pixring_renderer_abandoned_total") > abandoned, 20)
    assert waited is not None, "the render of a client that went away was not cancelled"
    print(f"render cancelled {waited:.2f} s after the client closed")
    # The worker is free again (a finished render would have kept it for seconds), and the
    # cancelled render was never counted as rendered.
    status, _, _ = http("GET", node.url + PHOTO + "?w=64", timeout=ANSWER_TIMEOUT)
    assert status == 200
    assert node.metrics().value("pixring_renderer_renders_total") == renders + 1
