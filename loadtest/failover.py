"""The failover benchmark: what clients see when a render node crashes and comes back.

Run: ``.venv/bin/python -m loadtest.failover`` (``--help`` for the knobs; ``--fast-health``
runs it again with the short health settings of the end-to-end tests).

Method
------
* Three reference renderers (``pixring renderer``, one render worker each, sample images
  generated into a temporary origin) and one ``pixring balancer`` over them, as real
  processes. Balancer health settings are its defaults unless ``--fast-health`` or
  ``--balancer-arg`` say otherwise; the flags used are printed.
* A fixed set of small renders is requested once, one at a time, so each lives in its
  owner's cache; then an open-loop client sends ``--rate`` requests per second over
  keep-alive connections (``loadtest.steadyload.SteadyLoad``; the client does not retry,
  so every failure is counted).
* After ``--before`` seconds the victim renderer is killed with SIGKILL (a crash: no
  drain, no deregistration). ``--down`` seconds later it is started again on the same
  port, with a cold cache. The run ends ``--after`` seconds after the restart.
* Reported: client errors by kind; p50/p99/max latency before the kill, in the failover
  window (kill to the first request the restarted node serves) and after it; time to
  ejection (kill to the first health event in the balancer's log, which is exact, and to
  ``/status`` showing the node out in every worker, which lags by up to a second); time
  to readmission (restart to the first request the node serves again, and to ``/status``
  showing it routable everywhere).

Timing on a shared two-core machine is noisy: the figures describe one run; run it
twice before believing a difference.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from loadtest.fleet import Fleet, image_urls, placement
from loadtest.steadyload import SteadyLoad, summarize

FAST_HEALTH = [
    "--probe-interval", "0.2", "--probe-timeout", "0.2", "--probe-rise", "2", "--probe-fall", "2",
    "--ejection-time", "1", "--slow-start", "0",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.failover", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--keys", type=int, default=60, help="distinct URLs in the load (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="balancer workers (default 2)")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the kill (default 5)")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the node stays dead (default 5)")
    parser.add_argument("--after", type=float, default=12.0, help="seconds of load after the restart (default 12)")
    parser.add_argument("--victim", default="r2", choices=["r1", "r2", "r3"], help="node to kill (default r2)")
    parser.add_argument("--fast-health", action="store_true",
                        help="probe every 0.2 s, rise/fall 2, ejection 1 s, no slow start (the e2e tests' settings)")
    parser.add_argument("--balancer-arg", action="append", default=[], metavar="ARG",
                        help="extra balancer argument, e.g. --balancer-arg=--slow-start=0 (repeatable)")
    args = parser.parse_args(argv)
    for name in ("rate", "before", "down", "after"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            parser.error(f"--{name} must be a positive number, got {value!r}")
    if args.keys < 3:
        parser.error(f"--keys must be at least 3, got {args.keys}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return args


def say(message: str) -> None:
    print(message, flush=True)


def fmt(value: float | None, unit: str = "s") -> str:
    return "n/a" if value is None else f"{value:.3f}{unit}"


def run(args: argparse.Namespace, workdir: Path) -> int:
    from renderer.samples import SAMPLES, ensure_samples

    origin = workdir / "samples"
    ensure_samples(origin, [s for s in SAMPLES if s.name.startswith("photos/small")])
    extra = [*(FAST_HEALTH if args.fast_health else []), *args.balancer_arg]
    with Fleet(workdir / "logs") as fleet:
        say("starting 3 renderers and the balancer ...")
        nodes = fleet.renderers(["r1", "r2", "r3"], origin)
        balancer = fleet.balancer(nodes, workers=args.workers, extra=extra)
        say(f"balancer: {' '.join(balancer.argv[3:])}")
        urls = image_urls(args.keys)
        owners = placement(balancer.base, urls)
        say(f"{len(urls)} keys warmed, owners: {dict(sorted(Counter(owners.values()).items()))}")
        victim = args.victim
        victim_node = nodes[victim]

        load = SteadyLoad(balancer.base, urls, rate=args.rate)
        load.start()
        t0 = load.started
        marks: dict[str, float] = {}
        wall: dict[str, float] = {}
        seen, last_line = 0, t0
        end = t0 + args.before + args.down + args.after
        try:
            while (now := time.monotonic()) < end:
                if "kill" not in marks and now >= t0 + args.before:
                    marks["kill"], wall["kill"] = time.monotonic(), time.time()
                    victim_node.kill()
                    say(f"t={now - t0:5.1f}s  SIGKILL {victim} (pid {victim_node.pid})")
                if "kill" in marks and "out" not in marks and balancer.unroutable_everywhere(victim):
                    marks["out"] = time.monotonic()
                    say(f"t={marks['out'] - t0:5.1f}s  /status: {victim} out of routing in every worker")
                if "kill" in marks and "restart" not in marks and now >= marks["kill"] + args.down:
                    marks["restart"], wall["restart"] = time.monotonic(), time.time()
                    victim_node.restart()
                    victim_node.ready()
                    marks["listening"] = time.monotonic()
                    say(f"t={marks['restart'] - t0:5.1f}s  restarted {victim} on port {victim_node.port} "
                        f"(listening after {marks['listening'] - marks['restart']:.2f}s)")
                if "restart" in marks and "served" not in marks:
                    served = [r.done for r in load.between(marks["restart"], float("inf")) if r.node == victim and r.ok]
                    if served:
                        marks["served"] = min(served)
                        say(f"t={marks['served'] - t0:5.1f}s  {victim} serves again")
                if "restart" in marks and "in" not in marks and balancer.routable_everywhere(victim):
                    marks["in"] = time.monotonic()
                    say(f"t={marks['in'] - t0:5.1f}s  /status: {victim} routable in every worker")
                if now - last_line >= 1.0:
                    results = load.results
                    progress(now - t0, results[seen:])
                    seen, last_line = len(results), now
                time.sleep(0.05)
        finally:
            results = load.stop()
        after_owners = placement(balancer.base, urls)
        return report(args, balancer, results, marks, wall, victim, owners, after_owners)


def progress(elapsed: float, window) -> None:
    """One line a second: what the client saw since the last line."""
    s = summarize(window)
    nodes = Counter(r.node for r in window if r.node)
    share = " ".join(f"{n} {100 * c / max(1, sum(nodes.values())):.0f}%" for n, c in sorted(nodes.items()))
    say(f"t={elapsed:5.1f}s  answered {s['requests']:4d}  errors {s['failed']:3d}  p50 {s['p50_ms']:7.2f} ms  "
        f"p99 {s['p99_ms']:7.2f} ms  served by {share}")


def report(args, balancer, results, marks, wall, victim, owners, after_owners) -> int:
    kill = marks["kill"]
    window_end = marks.get("served", float("inf"))
    phases = {
        "before the kill": [r for r in results if r.sent < kill],
        "failover window": [r for r in results if kill <= r.sent < window_end],
        "after it serves again": [r for r in results if r.sent >= window_end],
    }
    say("")
    say(f"failover of {victim} under {args.rate:g} req/s over {args.keys} keys, {args.workers} workers, "
        f"{'fast health settings' if args.fast_health else 'default health settings'}"
        f"{' + ' + ' '.join(args.balancer_arg) if args.balancer_arg else ''}")
    say(f"{'phase':<24}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, phase in phases.items():
        s = summarize(phase)
        say(f"{name:<24}{s['requests']:>9}{s['failed']:>8}{s['p50_ms']:>9}{s['p99_ms']:>9}{s['max_ms']:>9}")
    overall = summarize(results)
    say(f"client errors: {overall['failed']} of {overall['requests']} {overall['failures'] or ''}")
    for r in [r for r in results if not r.ok][:10]:
        since = f"{r.sent - marks['restart']:+.3f}s from the restart" if "restart" in marks and r.sent >= marks["restart"] \
            else f"{r.sent - kill:+.3f}s from the kill"
        say(f"  failed: {r.url} sent {since}, {r.error or r.status} after {r.latency * 1000:.1f} ms")
    first_out = min(filter(None, (balancer.first_event(kind, victim, wall["kill"]) for kind in ("down", "ejected"))),
                    default=None)
    first_in = min(filter(None, (balancer.first_event(kind, victim, wall["restart"]) for kind in ("up", "readmitted"))),
                   default=None) if "restart" in wall else None
    say(f"time to ejection: {fmt(None if first_out is None else first_out - wall['kill'])} to the first health event "
        f"(log), {fmt(marks['out'] - kill if 'out' in marks else None)} to /status in every worker")
    restart = marks.get("restart")
    say(f"time to readmission: {fmt(marks['served'] - restart if 'served' in marks else None)} from restart to "
        f"the first request it serves ({fmt(marks['listening'] - restart if 'listening' in marks else None)} of it "
        f"to listen); health event {fmt(None if first_in is None else first_in - wall['restart'])}, /status "
        f"{fmt(marks['in'] - restart if 'in' in marks else None)}")
    time.sleep(1.2)  # workers report once a second
    metrics = balancer.metrics()
    errors = {ls["kind"]: int(v) for n, ls, v in metrics.samples
              if n == "pixring_upstream_errors_total" and ls.get("node") == victim}
    say(f"balancer: {metrics.value('pixring_retries_total'):g} retries, "
        f"{metrics.value('pixring_retries_refused_total'):g} refused by the retry budget; "
        f"upstream errors on {victim}: {errors}")
    events = [e for e in balancer.health_events() if e.get("member") == victim and e["time"] >= wall["kill"]]
    say(f"{victim}'s health events (seconds after the kill, worker): " + "; ".join(
        f"{e['time'] - wall['kill']:.2f} w{e.get('worker')} {e['event'].removeprefix('health.')}" for e in events))
    own = [u for u in owners if owners[u] == victim]
    back = sum(1 for u in own if after_owners[u] == victim)
    moved = sum(1 for u in owners if owners[u] != victim and after_owners[u] != owners[u])
    say(f"keys: {back} of {victim}'s {len(own)} back with it at the end; {moved} keys of other nodes moved")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pixring-failover-") as tmp:
        try:
            return run(args, Path(tmp))
        except RuntimeError as exc:
            print(f"failover: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
