"""End to end: render nodes fail under a steady load, and the balancer routes round them.

Real processes throughout: reference renderers (``pixring renderer``) or fault nodes
(``tests/fault_node.py``, switched through ``PUT /_fault``), one ``pixring balancer``
over them, and an open-loop async client at 200 requests per second over keep-alive
connections (``steadyload.SteadyLoad``). Signals make the faults: SIGKILL (a crash),
SIGSTOP/SIGCONT (a hang), or a fault node's mode (503, ten times slower).

Timing on these machines is noisy, so the tests assert what must hold whatever the
timing (no client error, the order of events, which node serves which key) and
generous bounds for how long detection takes; the measured times are printed. Health
settings are short (probes every 0.2 s) so that a test takes seconds. ``/status`` and
``/metrics`` lag the workers by up to a second (they report once a second); bounds
include that second.

What each test also checks in ``/metrics`` and ``/status``: that the event it caused is
visible to an operator (down, up, ejected, retries, panic).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from loadtest.fleet import Balancer, Metrics, http, image_urls, placement, wait_until
from loadtest.steadyload import SteadyLoad, shares, summarize
from tests.e2e.faultkit import FaultFleet, opaque_urls

pytestmark = pytest.mark.e2e

RATE = 200.0  # requests per second
PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 0.2
RISE = 2
FALL = 2
STATUS_LAG = 1.0  # workers write their state once a second
SLACK = 1.5  # two shared cores: scheduling noise on top of the theory
HEALTH = [
    "--probe-interval", str(PROBE_INTERVAL), "--probe-timeout", str(PROBE_TIMEOUT),
    "--probe-rise", str(RISE), "--probe-fall", str(FALL),
    # Slow start off: a readmitted node takes all its keys back at once, which is what
    # these tests check (the ramp itself is the picker's unit tests' business).
    "--slow-start", "0",
    "--ejection-time", "1",
]
# Detection by probes: up to one interval until the next probe, then FALL failed probes.
DETECTION_BOUND = PROBE_INTERVAL * (FALL + 1) + PROBE_TIMEOUT * FALL + STATUS_LAG + SLACK
READMISSION_BOUND = PROBE_INTERVAL * (RISE + 1) + STATUS_LAG + SLACK


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    from renderer.samples import SAMPLES, ensure_samples

    origin = tmp_path_factory.mktemp("samples")
    ensure_samples(origin, [s for s in SAMPLES if s.name.startswith("photos/small")])
    return origin


@pytest.fixture
def fleet(tmp_path):
    with FaultFleet(tmp_path / "logs") as fleet:
        yield fleet


def metrics_after_report(balancer: Balancer) -> Metrics:
    time.sleep(STATUS_LAG + 0.2)  # let every worker write its state once more
    return balancer.metrics()


def busiest(owners: dict[str, str | None]) -> list[str]:
    """Nodes by how many of the keys they own, most first (ties by name): a fault on the
    busiest node meets the most traffic, whatever ring the balancer builds."""
    counts = Counter(owners.values())
    return sorted(counts, key=lambda node: (-counts[node], node))


def report(label: str, results) -> dict:
    summary = summarize(results)
    print(f"{label}: {summary}")
    return summary


def test_sigkill_of_one_renderer_loses_no_request_and_moves_only_its_keys(fleet, samples):
    nodes = fleet.renderers(["r1", "r2", "r3"], samples)
    balancer = fleet.balancer(nodes, workers=2, extra=HEALTH)
    urls = image_urls(60)
    before = placement(balancer.base, urls)  # also renders each key once: cache hits from here on
    assert set(before.values()) == {"r1", "r2", "r3"}, before
    victim = busiest(before)[0]
    start = balancer.metrics()

    with SteadyLoad(balancer.base, urls, rate=RATE) as load:
        time.sleep(3.0)
        killed, killed_wall = time.monotonic(), time.time()
        nodes[victim].kill()
        ejected_after = wait_until(lambda: balancer.unroutable_everywhere(victim), timeout=15)
        time.sleep(max(0.0, killed + 6.0 - time.monotonic()))
    results = load.results

    report("before the kill", [r for r in results if r.sent < killed])
    report("after the kill", [r for r in results if r.sent >= killed])
    logged = {kind: balancer.first_event(kind, victim, killed_wall) for kind in ("ejected", "down")}
    print(f"{victim} unroutable in /status {ejected_after}s after SIGKILL (bound {DETECTION_BOUND:.2f}s); "
          + ", ".join(f"first health.{kind} logged {None if t is None else round(t - killed_wall, 3)}s after"
                      for kind, t in logged.items()))
    assert [r for r in results if not r.ok] == [], "a client request failed"
    assert len(results) >= RATE * 4  # the load really ran
    assert ejected_after is not None and ejected_after <= DETECTION_BOUND

    after = placement(balancer.base, urls)
    moved = [u for u in urls if before[u] != victim and after[u] != before[u]]
    assert moved == [], f"keys of live nodes moved: {moved[:5]}"
    for url in urls:
        if before[url] == victim:
            assert after[url] in set(nodes) - {victim}, (url, after[url])

    end = metrics_after_report(balancer)
    assert end.value("pixring_health_events_total", node=victim, kind="down") >= balancer.workers
    assert end.value("pixring_member_routable", node=victim) == 0
    errors = "pixring_upstream_errors_total"
    assert end.value(errors, node=victim) > start.value(errors, node=victim)
    assert end.value("pixring_retries_total") > start.value("pixring_retries_total")
    status = balancer.status()
    (member,) = [m for m in status["members"] if m["id"] == victim]
    assert member["state"] in {"down", "ejected"}, member["state"]
    assert status["health_events"].get(f"{victim}:down", 0) >= 1
    assert status["totals"]["retries"] > 0


def test_sigstop_hang_is_retried_within_the_deadline_and_sigcont_brings_the_keys_back(fleet, samples):
    nodes = fleet.renderers(["r1", "r2", "r3"], samples)
    try_timeout, request_timeout = 0.3, 3.0
    balancer = fleet.balancer(nodes, workers=2, extra=[
        *HEALTH, "--try-timeout", str(try_timeout), "--request-timeout", str(request_timeout)])
    urls = image_urls(60)
    before = placement(balancer.base, urls)
    assert set(before.values()) == {"r1", "r2", "r3"}, before
    victim = busiest(before)[0]
    victim_urls = [u for u in urls if before[u] == victim]
    start = balancer.metrics()

    with SteadyLoad(balancer.base, urls, rate=RATE) as load:
        time.sleep(2.5)
        stopped = time.monotonic()
        nodes[victim].send(signal.SIGSTOP)
        out_after = wait_until(lambda: balancer.unroutable_everywhere(victim), timeout=15)
        time.sleep(max(0.0, stopped + 3.5 - time.monotonic()))
        continued = time.monotonic()
        nodes[victim].send(signal.SIGCONT)
        back_after = wait_until(lambda: balancer.routable_everywhere(victim), timeout=15)
        time.sleep(2.0)
    results = load.results

    hung = [r for r in results if stopped <= r.sent < continued]
    report("before SIGSTOP", [r for r in results if r.sent < stopped])
    summary = report("while stopped", hung)
    report("after SIGCONT", [r for r in results if r.sent >= continued])
    retried = [r for r in hung if r.latency >= try_timeout]
    print(f"{len(retried)} requests waited out the {try_timeout}s try timeout and were retried")
    print(f"{victim} out of routing {out_after}s after SIGSTOP (bound {DETECTION_BOUND:.2f}s); "
          f"back {back_after}s after SIGCONT (bound {READMISSION_BOUND:.2f}s)")
    assert [r for r in results if not r.ok] == [], "a client request failed"
    assert max(r.latency for r in results) < request_timeout, summary
    assert retried, "no request met the hung node: the test did not test the hang"
    assert out_after is not None and out_after <= DETECTION_BOUND
    assert back_after is not None and back_after <= READMISSION_BOUND

    after = placement(balancer.base, urls)
    assert after == before, {u: (before[u], after[u]) for u in urls if after[u] != before[u]}
    # Under load a few other keys may overflow to it too (bounded load), so only its own
    # keys are counted: they must be back with it.
    served_again = {r.url for r in results if r.sent >= continued + back_after and r.node == victim}
    assert served_again & set(victim_urls), f"{victim} served none of its keys under load after it came back"

    end = metrics_after_report(balancer)
    assert end.value("pixring_upstream_errors_total", node=victim, kind="timeout") > 0
    assert end.value("pixring_retries_total") > start.value("pixring_retries_total")
    assert end.value("pixring_health_events_total", node=victim, kind="down") >= 1
    assert end.value("pixring_health_events_total", node=victim, kind="up") >= 1
    assert end.value("pixring_member_routable", node=victim) == 1


def test_a_node_answering_503_and_a_ten_times_slower_node_cost_no_client_error(fleet):
    # 30 ms an answer, 300 ms when slow: at 200 req/s the slow node's keys want some 20
    # requests in flight, well past any floor under which bounded load leaves a node alone.
    nodes = fleet.fault_nodes(["n1", "n2", "n3"], delay=0.03)
    # One worker: bounded load counts in-flight requests per worker, so one view shows it best.
    balancer = fleet.balancer(nodes, workers=1, extra=HEALTH)
    urls = opaque_urls(60)
    before = placement(balancer.base, urls)
    assert set(before.values()) == {"n1", "n2", "n3"}, before
    slow, failing, _ = busiest(before)  # the slow node's share has the most room to drop
    start = balancer.metrics()

    with SteadyLoad(balancer.base, urls, rate=RATE) as load:
        time.sleep(3.0)
        t_503 = time.monotonic()
        nodes[failing].set("503", healthz="ok")  # only real traffic can tell: passive ejection
        time.sleep(3.0)
        nodes[failing].set("ok")
        t_ok = time.monotonic()
        back_after = wait_until(lambda: balancer.routable_everywhere(failing), timeout=15)
        t_slow = time.monotonic()
        nodes[slow].set("slow", delay=0.3)
        time.sleep(3.0)
        nodes[slow].set("ok")
        t_fast = time.monotonic()
        time.sleep(1.5)
    results = load.results

    healthy = [r for r in results if 0.5 + load.started <= r.sent < t_503]
    answering_503 = [r for r in results if t_503 <= r.sent < t_ok]
    while_slow = [r for r in results if t_slow + 0.5 <= r.sent < t_fast]
    report("all healthy", healthy)
    report(f"{failing} answering 503", answering_503)
    report(f"{slow} ten times slower", while_slow)
    print(f"shares healthy {shares(healthy)}; while {failing} answers 503 {shares(answering_503)}; "
          f"while {slow} is slow {shares(while_slow)}; {failing} back {back_after}s after it healed")
    assert [r for r in results if not r.ok] == [], "a client request failed"
    assert back_after is not None
    assert shares(while_slow).get(slow, 0.0) < 0.75 * shares(healthy)[slow]
    assert shares(answering_503).get(failing, 0.0) < shares(healthy)[failing]

    end = metrics_after_report(balancer)
    assert end.value("pixring_upstream_errors_total", node=failing, kind="http_503") > 0
    assert end.value("pixring_health_events_total", node=failing, kind="ejected") >= 1
    assert end.value("pixring_retries_total") > start.value("pixring_retries_total")
    status = balancer.status()
    assert status["health_events"].get(f"{failing}:ejected", 0) >= 1
    (member,) = [m for m in status["members"] if m["id"] == failing]
    assert member["errors"].get("http_503", 0) > 0


def test_every_node_down_answers_503_at_once_without_a_retry_storm_and_recovers(fleet):
    nodes = fleet.fault_nodes(["n1", "n2", "n3"])
    balancer = fleet.balancer(nodes, workers=2, extra=HEALTH)
    urls = opaque_urls(60)
    assert set(placement(balancer.base, urls).values()) == {"n1", "n2", "n3"}

    def all_down() -> bool:
        status = balancer.status()
        return status["panic"] and all(
            len(views) == balancer.workers and not any(views)
            for views in (balancer.routable(name, status) for name in nodes))

    with SteadyLoad(balancer.base, urls, rate=RATE) as load:
        healthy_metrics = metrics_after_report(balancer)
        killed = time.monotonic()
        for node in nodes.values():
            node.kill()
        down_after = wait_until(all_down, timeout=15)
        assert down_after is not None, "the balancer never saw every node down"
        plateau_metrics = metrics_after_report(balancer)
        plateau_start = time.monotonic()
        readyz_status, readyz_reason = balancer.readyz()
        time.sleep(2.0)
        plateau_end = time.monotonic()
        plateau_end_metrics = metrics_after_report(balancer)
        restarted = time.monotonic()
        for node in nodes.values():
            node.restart()
        for node in nodes.values():
            node.ready()
        routable = wait_until(lambda: all(balancer.routable_everywhere(n) for n in nodes), timeout=15)
        up_after = None if routable is None else time.monotonic() - restarted
        time.sleep(2.0)
    results = load.results

    transition = [r for r in results if killed <= r.sent < killed + down_after]
    plateau = [r for r in results if plateau_start <= r.sent < plateau_end]
    after = [r for r in results if r.sent >= restarted]
    first_ok = min((r.done for r in after if r.ok), default=None)
    report("while the balancer notices", transition)
    summary = report("every node down", plateau)
    report("after the restart", after)
    attempts = (plateau_end_metrics.value("pixring_upstream_attempts_total")
                - plateau_metrics.value("pixring_upstream_attempts_total"))
    answered = (plateau_end_metrics.value("pixring_requests_total", node="-")
                - plateau_metrics.value("pixring_requests_total", node="-"))
    noticing_attempts = (plateau_metrics.value("pixring_upstream_attempts_total")
                         - healthy_metrics.value("pixring_upstream_attempts_total"))
    noticing_requests = (plateau_metrics.value("pixring_requests_total")
                         - healthy_metrics.value("pixring_requests_total"))
    refused = (plateau_metrics.value("pixring_retries_refused_total")
               - healthy_metrics.value("pixring_retries_refused_total"))
    print(f"from the last healthy report to all down: {noticing_attempts:g} upstream attempts for "
          f"{noticing_requests:g} requests, retries refused by the budget: {refused:g}")
    print(f"all down in /status {down_after:.2f}s after the kill; upstream attempts while all down: "
          f"{attempts:g} for {answered:g} requests answered by pixring itself; first 200 "
          f"{None if first_ok is None else round(first_ok - restarted, 3)}s after the restart, "
          f"all routable in /status {up_after}s after")

    # An upstream load balancer should stop sending here: nothing can be served.
    assert readyz_status == 503 and "no healthy member" in readyz_reason, (readyz_status, readyz_reason)
    assert plateau and all(r.status == 503 for r in plateau), summary
    assert all(r.retry_after for r in plateau), "a 503 without Retry-After"
    assert summary["max_ms"] < 1000, "every node down must be answered at once"
    assert answered >= len(plateau) * 0.5  # the metrics window really covered the plateau
    assert attempts == 0, "nothing is routable, yet requests were sent to nodes"
    assert plateau_metrics.value("pixring_panic") == 1
    assert all(plateau_metrics.value("pixring_member_routable", node=name) == 0 for name in nodes)
    # Before every node is known down, retries are bounded by the attempts limit (3, the
    # default) and the budget: never more than three tries per request.
    assert noticing_attempts <= 3 * noticing_requests
    assert up_after is not None and first_ok is not None
    recovered = [r for r in after if r.sent >= restarted + up_after]
    assert recovered and all(r.ok for r in recovered)

    end = metrics_after_report(balancer)
    assert end.value("pixring_panic") == 0
    assert end.value("pixring_health_events_total", kind="panic_on") >= 1
    assert end.value("pixring_health_events_total", kind="panic_off") >= 1
    for name in nodes:
        assert end.value("pixring_health_events_total", node=name, kind="down") >= 1
        assert end.value("pixring_health_events_total", node=name, kind="up") >= 1
        assert end.value("pixring_member_routable", node=name) == 1


def test_the_fault_node_switches_modes_and_refuses_bad_control_input(fleet):
    (node,) = fleet.fault_nodes(["n1"]).values()
    assert http("GET", node.url + "/a.jpg")[0] == 200
    assert node.set("503", healthz="ok")["mode"] == "503"
    assert http("GET", node.url + "/a.jpg")[0] == 503
    assert http("GET", node.url + "/healthz")[0] == 200  # healthz kept ok
    node.set("shed", healthz="ok")
    status, headers, _ = http("GET", node.url + "/a.jpg")
    assert status == 503 and headers.get("Retry-After") == "1"
    node.set("500")
    assert http("GET", node.url + "/a.jpg")[0] == 500
    assert http("GET", node.url + "/healthz")[0] == 500  # healthz follows by default
    for body, message in [
        ({"mode": "broken"}, "mode must be one of"),
        ({"mode": "slow"}, "mode slow needs a delay"),
        ({"mode": "slow", "delay": -1}, "delay must be a number of seconds >= 0"),
        ({"mode": "ok", "healthz": "maybe"}, "healthz must be one of"),
        ({"mode": "ok", "extra": 1}, "unknown field(s) extra"),
        (["ok"], "must be a JSON object"),
    ]:
        status, _, answer = http("PUT", node.url + "/_fault", body)
        assert status == 400 and message in answer.decode(), (body, status, answer)
    assert node.set("ok")["answers"] == {"200": 1, "503": 2, "500": 1}
