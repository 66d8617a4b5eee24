"""``python -m loadtest.capacity``: a capacity test of a pixring tier with locust, in one command.

By default it starts a local cluster (``pixring up`` on free loopback ports: N reference
renderers on the sample images and a balancer), runs locust headless against it for
``--run-time`` with ``--users`` users after a ``--warm-up`` that is not counted, shows progress
while it runs, prints a summary (requests, req/s, failures by kind and by who answered,
p50/p95/p99, the cold and warm phases, the per-node spread, the affinity of equivalent URL
spellings, the cache hit ratio) and stops everything it started. With ``--host URL`` it
targets a balancer that is already running instead.

``--find-capacity`` raises the users in steps (``loadtest.steps``) until a step's error ratio
or p99 crosses its limit and reports the capacity found: the highest step that held. With
``--locust-workers N`` the load comes from a locust master and N worker processes (locust's
distributed mode; the same master and workers can run on several hosts, docs/capacity.md).

Exit status: 0 the run passed; 1 the failure ratio exceeded ``--max-failure-ratio`` (or no
request was answered); 2 a usage error, including a non-loopback ``--host`` without
``--allow-remote``; 3 the harness could not run the test (the cluster did not start or died,
locust failed, the locustfile raised); 130 interrupted (Ctrl-C or SIGTERM; the summary of
the run so far is still printed). CI can gate on it.

Rules of this module
--------------------
* Always ends by itself: ``--run-time`` has a default, locust gets it as ``-t`` and is
  stopped after it with a grace period, and every wait has a deadline.
* Leaves nothing behind: the cluster and locust each run in their own session (process
  group), with a parent-death signal, and are stopped by their group id: SIGTERM first (so
  ``pixring up`` stops its renderers and balancer in order and locust writes its final
  statistics), SIGKILL to the group if that does not finish in time. Ctrl-C and SIGTERM
  stop the run the same way and still print what was measured.
* Sends traffic to loopback only unless ``--allow-remote`` is given: a capacity test is
  heavy traffic, and a typo in ``--host`` must not aim it at someone else's machine. The
  host's name is not resolved; only ``localhost`` and literal loopback addresses pass.
* The figures come from locust's files, never from its console text: ``--json-file`` for
  the final statistics, ``--csv`` for the progress (``*_stats_history.csv``), and the
  locustfile's tally (``--pixring-tally``) for nodes, cache and affinity
  (https://docs.locust.io/en/stable/configuration.html,
  https://docs.locust.io/en/stable/retrieving-stats.html). Locust's own log goes to
  ``locust.log`` in the output directory, the cluster's to ``cluster.log``.
* locust runs as its own process (it patches its process with gevent); this module never
  imports it.
"""

from __future__ import annotations

import argparse
import csv
import io
import ipaddress
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from loadtest import capacity_summary
from loadtest.backends import free_port
from loadtest.tally import Tally
from loadtest.traffic import DEFAULT_URLS_PER_SOURCE, DEFAULT_ZIPF_EXPONENT
from pixring.process import die_with_parent

__all__ = ["EXIT_FAILED", "EXIT_HARNESS", "EXIT_INTERRUPTED", "EXIT_PASSED", "EXIT_USAGE", "build_parser",
           "is_loopback_url", "locust_argv", "main"]

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_HARNESS = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
_CLUSTER_START_TIMEOUT_S = 90.0  # pixring up's own limit is 60 s, plus sample generation
_LOCUST_START_GRACE_S = 30.0  # locust's import, spawn and final report on top of -t
_STOP_TIMEOUT_S = 20.0
_STOP_USERS_TIMEOUT_S = 10  # locust --stop-timeout: in-flight requests may finish and count
RESULT_FILES = ("locust.json", "tally.json", "phases.json", "summary.json", "locust.html", "locust_stats.csv",
                "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv")


def is_loopback_url(url: str) -> bool:
    """True when ``url`` is http(s) to ``localhost`` or a literal loopback address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _duration(text: str) -> float:
    try:
        return capacity_summary.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0s") else _duration(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected an integer of at least 1")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: expected a fraction within 0-1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.capacity",
        description="Capacity test of a pixring tier with locust: starts a local cluster (or targets --host), "
                    "runs imgix-like traffic for --run-time and prints a summary. Exit status: 0 passed, "
                    "1 failure ratio over the limit, 2 usage error, 3 the test could not run, 130 interrupted.",
    )
    load = parser.add_argument_group("load")
    load.add_argument("--run-time", type=_duration, default=None, metavar="T",
                      help="how long the load runs, warm-up included: 30s, 5m, 1h30m or seconds "
                           "(default: 30s; 10m with --find-capacity, which usually ends earlier)")
    load.add_argument("--warm-up", type=_duration_or_zero, default=10.0, metavar="T",
                      help="load at the start that is not counted, to fill the caches (at most half the run; "
                           "0 for none; default: 10s)")
    load.add_argument("--users", type=_positive_int, default=10, metavar="N",
                      help="concurrent simulated clients, each with one request in flight (default: 10)")
    load.add_argument("--spawn-rate", type=float, default=None, metavar="R",
                      help="users started per second (default: all of them within the first second)")
    load.add_argument("--processes", type=_positive_int, default=1, metavar="N",
                      help="locust processes generating the load; one is limited to one CPU core (default: 1)")
    load.add_argument("--max-failure-ratio", type=_ratio, default=0.01, metavar="F",
                      help="exit 1 when more than this share of requests failed; with --find-capacity, the "
                           "error ratio a step must stay within (default: 0.01)")
    load.add_argument("--locust-workers", type=_positive_int, default=None, metavar="N",
                      help="run locust as a master and N local worker processes (distributed mode)")
    steps_group = parser.add_argument_group("finding the capacity (--find-capacity)")
    steps_group.add_argument("--find-capacity", action="store_true",
                             help="raise the users in steps until a step's error ratio or p99 crosses its limit")
    steps_group.add_argument("--start-users", type=_positive_int, default=10, metavar="N",
                             help="users of the first step, and of the warm-up (default: 10)")
    steps_group.add_argument("--step-users", type=_positive_int, default=10, metavar="N",
                             help="users added at each step (default: 10)")
    steps_group.add_argument("--step-time", type=_duration, default=15.0, metavar="T",
                             help="how long each step lasts (default: 15s)")
    steps_group.add_argument("--max-users", type=_positive_int, default=1000, metavar="N",
                             help="the most users a step has (default: 1000)")
    steps_group.add_argument("--max-p99", type=float, default=1000.0, metavar="MS",
                             help="a step whose p99 is over this many milliseconds broke (default: 1000)")
    traffic = parser.add_argument_group("traffic model (loadtest/locustfile.py)")
    traffic.add_argument("--sources", default="", metavar="LIST",
                         help="source image paths, comma-separated, or @FILE with one per line "
                              "(default: the sample images `pixring up` generates)")
    traffic.add_argument("--urls-per-source", type=_positive_int, default=DEFAULT_URLS_PER_SOURCE, metavar="N",
                         help=f"distinct renders per source (default: {DEFAULT_URLS_PER_SOURCE})")
    traffic.add_argument("--zipf", type=float, default=DEFAULT_ZIPF_EXPONENT, metavar="S",
                         help=f"popularity skew, the Zipf exponent; 0 is uniform (default: {DEFAULT_ZIPF_EXPONENT})")
    traffic.add_argument("--variant-share", type=_ratio, default=0.25, metavar="F",
                         help="share of requests spelled non-canonically but equivalently (default: 0.25)")
    traffic.add_argument("--seed", type=int, default=1, metavar="N", help="seed of the URL catalogue and the draws (default: 1)")
    traffic.add_argument("--node-header", default="X-Pixring-Node", metavar="NAME",
                         help="the balancer's node header (its node_header setting; default: X-Pixring-Node)")
    target = parser.add_argument_group("target")
    target.add_argument("--host", default=None, metavar="URL",
                        help="test the balancer at URL instead of starting a cluster (loopback only, "
                             "unless --allow-remote)")
    target.add_argument("--admin", default=None, metavar="URL",
                        help="with --host: the balancer's admin URL, to name the members the spread should cover")
    target.add_argument("--allow-remote", action="store_true",
                        help="allow a --host that is not a loopback address (your own staging balancer)")
    cluster = parser.add_argument_group("local cluster (without --host)")
    cluster.add_argument("--renderers", type=_positive_int, default=3, metavar="N",
                         help="reference renderers to start (default: 3)")
    cluster.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                         help="balancer worker processes (default: 1, leaving the other cores to renderers and locust)")
    cluster.add_argument("--origin", default=None, metavar="DIR",
                         help="source images; the samples are generated there if missing (default: var/samples "
                              "of the repository)")
    cluster.add_argument("--balancer-arg", action="append", default=[], metavar="ARG",
                         help="an extra argument for `pixring balancer`, e.g. --balancer-arg=--balance-factor=0 "
                              "(repeatable)")
    cluster.add_argument("--renderer-arg", action="append", default=[], metavar="ARG",
                         help="an extra argument for every `pixring renderer` (repeatable)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", default=None, metavar="DIR",
                        help="where locust's CSV/JSON/HTML, the tally, the logs and summary.json go "
                             "(default: var/capacity/<date-time>)")
    output.add_argument("--locust-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for locust, e.g. --locust-arg=--pixring-accept=image/webp "
                             "(repeatable; not --host, --locustfile or --config: the target is --host)")
    return parser


# ---------------------------------------------------------------------------- processes


def _spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child in its own session (a process group to stop by id) that gets a SIGTERM if this
    process dies first, so even a killed ``capacity`` leaves no cluster or locust behind."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=REPO, env=env, start_new_session=True, preexec_fn=die_with_parent)


def _stop_group(proc: subprocess.Popen, timeout: float = _STOP_TIMEOUT_S) -> int | None:
    """SIGTERM the leader, wait, then SIGKILL its whole group; reap it. Its exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group, and only that
    except (ProcessLookupError, PermissionError):
        pass
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _members(admin_url: str) -> list[str]:
    """Member ids from the balancer's ``/status`` (empty when it cannot be read)."""
    try:
        status, doc = _get_json(admin_url.rstrip("/") + "/status")
    except (OSError, ValueError):
        return []
    if status != 200 or not isinstance(doc, dict):
        return []
    return sorted(str(member.get("id")) for member in doc.get("members", []) if isinstance(member, dict))


class StartError(RuntimeError):
    """The cluster did not come up; the message says why and where its log is."""


@dataclass
class Cluster:
    """A ``pixring up`` we started: its process (a session leader) and its URLs."""

    proc: subprocess.Popen
    host: str
    admin: str
    log_path: Path

    @classmethod
    def start(cls, args: argparse.Namespace, out_dir: Path, say: Callable[[str], None]) -> "Cluster":
        port, admin_port = free_port(), free_port()
        origin = Path(args.origin).resolve() if args.origin else REPO / "var" / "samples"
        argv = [sys.executable, "-m", "pixring.cli", "up", "--renderers", str(args.renderers),
                "--port", str(port), "--admin-port", str(admin_port), "--workers", str(args.workers),
                "--origin", str(origin), "--log-dir", str(out_dir / "cluster-logs"),
                *[f"--balancer-arg={arg}" for arg in args.balancer_arg],
                *[f"--renderer-arg={arg}" for arg in args.renderer_arg]]
        log_path = out_dir / "cluster.log"
        say(f"starting a local cluster: {args.renderers} renderers + a balancer with {args.workers} worker(s) "
            f"on 127.0.0.1:{port} (log: {log_path})")
        cluster = cls(_spawn(argv, log_path), f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", log_path)
        try:
            cluster._wait_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _wait_ready(self) -> None:
        started = time.monotonic()
        while time.monotonic() - started < _CLUSTER_START_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise StartError(f"pixring up exited with code {self.proc.returncode} while starting:\n"
                                 f"{_tail(self.log_path)}")
            try:
                status, _ = _get_json(self.admin + "/readyz", timeout=1.0)
                if status == 200:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise StartError(f"the cluster was not ready after {_CLUSTER_START_TIMEOUT_S:g}s:\n{_tail(self.log_path)}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        return _stop_group(self.proc)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------- locust


def _locust_command() -> list[str]:
    locust = Path(sys.executable).parent / "locust"
    return [str(locust)] if locust.exists() else [sys.executable, "-m", "locust"]


def worker_argv(master_port: int) -> list[str]:
    """One locust worker of a local master: it takes the traffic options from the master."""
    return [*_locust_command(), "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1",
            "--master-port", str(master_port)]


def locust_argv(args: argparse.Namespace, host: str, out_dir: Path, master_port: int | None = None) -> list[str]:
    """The locust command: headless, stopping by itself, figures to files in ``out_dir``;
    with ``master_port``, the master of ``args.locust_workers`` workers."""
    command = _locust_command()
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else float(args.users)
    argv = [*command, "-f", str(LOCUSTFILE), "--headless", "--host", host,
            "--users", str(args.users), "--spawn-rate", f"{spawn_rate:g}", "--run-time", f"{args.run_time:g}s",
            "--stop-timeout", str(_STOP_USERS_TIMEOUT_S), "--only-summary",
            "--csv", str(out_dir / "locust"), "--json-file", str(out_dir / "locust"),
            "--html", str(out_dir / "locust.html"),
            "--exit-code-on-error", "0",  # failures are judged here; non-zero means locust itself failed
            "--pixring-tally", str(out_dir / "tally.json"), "--pixring-phases", str(out_dir / "phases.json"),
            "--pixring-warm-up", f"{args.warm_up:g}", "--pixring-max-error-ratio", f"{args.max_failure_ratio:g}",
            "--pixring-max-p99", f"{args.max_p99:g}",
            "--pixring-urls-per-source", str(args.urls_per_source), "--pixring-zipf", f"{args.zipf:g}",
            "--pixring-variant-share", f"{args.variant_share:g}", "--pixring-seed", str(args.seed),
            "--pixring-node-header", args.node_header]
    if args.sources:
        # locust runs in the repository: a @FILE is read from where the command was given.
        sources = "@" + str(Path(args.sources[1:]).resolve()) if args.sources.startswith("@") else args.sources
        argv += ["--pixring-sources", sources]
    if args.find_capacity:
        argv += ["--pixring-find-capacity", "--pixring-start-users", str(args.start_users),
                 "--pixring-step-users", str(args.step_users), "--pixring-step-time", f"{args.step_time:g}",
                 "--pixring-max-users", str(args.max_users)]
    if master_port is not None:
        argv += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                 "--expect-workers", str(args.locust_workers), "--expect-workers-max-wait", "60"]
    elif args.processes > 1:
        argv += ["--processes", str(args.processes)]
    return argv + list(args.locust_arg)


def _last_history_row(path: Path) -> dict[str, str] | None:
    """The last complete Aggregated row of locust's ``*_stats_history.csv``, if any."""
    try:
        text = path.read_text()
    except OSError:
        return None
    lines = text.splitlines()
    if len(lines) < 2 or not text.endswith("\n"):
        lines = lines[:-1]  # a row being written
    if len(lines) < 2:
        return None
    rows = list(csv.DictReader(io.StringIO("\n".join([lines[0], *lines[-3:]]))))
    aggregated = [row for row in rows if row.get("Name") == "Aggregated"]
    return aggregated[-1] if aggregated else None


def _progress_every(run_seconds: float) -> float:
    return min(30.0, max(2.0, run_seconds / 15))


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop the run, keep what was measured."""


def _interrupt(signum: int, _frame: object) -> None:
    # Once: a second Ctrl-C must not cut the clean-up short (the children would be stopped
    # by their parent-death signal anyway, but out of order and without final figures).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    print("stopping: locust and the cluster are being stopped, please wait", file=sys.stderr, flush=True)
    raise Interrupted(signal.Signals(signum).name)


def run_locust(argv: Sequence[str], out_dir: Path, run_seconds: float, say: Callable[[str], None],
               cluster: Cluster | None, workers: Sequence[Sequence[str]] = ()) -> tuple[int | None, float, list[str]]:
    """Run locust (and its ``workers``' commands, if any) to its end, printing progress.
    (exit code, CPU seconds it used, notes)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    notes: list[str] = []
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = _spawn(argv, out_dir / "locust.log", env)
    worker_procs = [_spawn(command, out_dir / f"locust-worker-{i + 1}.log", env) for i, command in enumerate(workers)]
    started = time.monotonic()
    deadline = started + run_seconds + _STOP_USERS_TIMEOUT_S + _LOCUST_START_GRACE_S
    every = _progress_every(run_seconds)
    history = out_dir / "locust_stats_history.csv"
    next_report = started + every
    previous_row: dict[str, str] | None = None
    load_started = 0.0  # epoch seconds of locust's first statistics row
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if now > deadline:
                notes.append(f"locust did not stop within {deadline - started:.0f}s and was stopped")
                break
            if cluster is not None and not cluster.alive():
                notes.append(f"the cluster exited (code {cluster.proc.returncode}) during the run: "
                             f"see {cluster.log_path}")
                break
            if now >= next_report:
                row = _last_history_row(history)
                if row is None:
                    say(f"[{now - started:5.0f}s] starting locust ...")
                else:
                    # The run's clock starts with locust's first statistics row (its -t starts
                    # then too), not with the process, whose start-up can take seconds.
                    if not load_started:
                        try:
                            load_started = float(row.get("Timestamp") or 0)
                        except ValueError:
                            load_started = 0.0
                    elapsed = min(time.time() - load_started, run_seconds) if load_started else 0.0
                    say(capacity_summary.progress_line(row, elapsed, run_seconds, previous_row))
                previous_row = row or previous_row
                next_report += every
            time.sleep(0.2)
    except Interrupted as exc:
        notes.append(f"interrupted ({exc}) after {time.monotonic() - started:.0f}s: figures cover the run so far")
    finally:
        code = proc.returncode if proc.poll() is not None else _stop_group(proc)
        for worker in worker_procs:  # they quit when their master does; stop any that did not
            _stop_group(worker, timeout=5)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    return code, cpu, notes


# ---------------------------------------------------------------------------- main


def _read_results(out_dir: Path) -> tuple[list[dict], Tally, dict]:
    entries = json.loads((out_dir / "locust.json").read_text())
    tally_path = out_dir / "tally.json"
    tally = Tally.from_json(json.loads(tally_path.read_text())) if tally_path.exists() else Tally()
    phases_path = out_dir / "phases.json"
    phases = json.loads(phases_path.read_text()) if phases_path.exists() else {}
    return entries, tally, phases


def _balancer_view(admin_url: str | None) -> dict:
    """The balancer's totals and config from ``/status`` (empty when it cannot be read):
    read before and after the load, their difference says what the balancer did on purpose
    (retries, hedges, moved keys) while the affinity was measured."""
    if not admin_url:
        return {}
    try:
        status, doc = _get_json(admin_url.rstrip("/") + "/status")
    except (OSError, ValueError):
        return {}
    if status != 200 or not isinstance(doc, dict):
        return {}
    return {"totals": doc.get("totals", {}), "config": doc.get("config", {}),
            "members": len(doc.get("members", []))}


def _exceptions(out_dir: Path) -> int:
    """Exceptions the locustfile raised (locust's ``*_exceptions.csv``): a harness bug, not a fleet failure."""
    try:
        with open(out_dir / "locust_exceptions.csv", newline="") as f:
            return sum(int(row.get("Count") or 0) for row in csv.DictReader(f))
    except (OSError, ValueError):
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, url in (("--host", args.host), ("--admin", args.admin)):
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            parser.error(f"{name} {url}: expected a URL such as http://127.0.0.1:8080")
    if not args.allow_remote:
        for name, url in (("--host", args.host), ("--admin", args.admin)):
            if url is not None and not is_loopback_url(url):
                parser.error(f"refusing to send load to {name} {url}: it is not a loopback address "
                             "(localhost, 127.0.0.0/8, ::1). A capacity test is heavy traffic; if this is your "
                             "own staging balancer, pass --allow-remote.")
    for arg in args.locust_arg:
        # locust takes the last --host it is given: one here would slip past the loopback check.
        if arg.startswith(("-H", "--host", "-f", "--locustfile", "--config")):
            parser.error(f"--locust-arg {arg}: the target is --host (and the locustfile is this tool's)")
    if args.admin is not None and args.host is None:
        parser.error("--admin goes with --host (a cluster started here is asked itself)")
    if args.run_time is None:
        args.run_time = 600.0 if args.find_capacity else 30.0
    if args.locust_workers and args.processes > 1:
        parser.error("--locust-workers and --processes are two ways to the same thing: give one")

    def say(line: str) -> None:
        print(line, flush=True)

    out_dir = Path(args.out).resolve() if args.out else REPO / "var" / "capacity" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in RESULT_FILES:  # a reused --out must not lend this run an earlier run's figures
        (out_dir / stale).unlink(missing_ok=True)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster: Cluster | None = None
    notes: list[str] = []
    try:
        try:
            if args.host is None:
                cluster = Cluster.start(args, out_dir, say)
                host, admin = cluster.host, cluster.admin
            else:
                host, admin = args.host.rstrip("/"), args.admin
        except StartError as exc:
            say(f"capacity: {exc}")
            return EXIT_HARNESS
        except Interrupted:
            say("capacity: interrupted while starting the cluster")
            return EXIT_INTERRUPTED
        try:
            members = _members(admin) if admin else []
            say(f"target {host}" + (f", members: {', '.join(members)}" if members else ""))
            shape = (f"steps of +{args.step_users} users from {args.start_users}, {args.step_time:g}s each, "
                     f"until p99 > {args.max_p99:g} ms or errors > {100 * args.max_failure_ratio:g}% (at most "
                     f"{args.run_time:g}s)" if args.find_capacity else f"{args.users} users for {args.run_time:g}s")
            generators = (f"a master and {args.locust_workers} worker(s)" if args.locust_workers
                          else f"{args.processes} process(es)")
            say(f"locust: {shape}, the first {min(args.warm_up, args.run_time / 2):g}s a warm-up not counted; "
                f"{generators}; results in {out_dir}")
            before = _balancer_view(admin)
        except Interrupted:
            say("capacity: interrupted before the load started")
            return EXIT_INTERRUPTED
        master_port = free_port() if args.locust_workers else None
        workers = [worker_argv(master_port) for _ in range(args.locust_workers or 0)] if master_port else []
        code, cpu_seconds, notes = run_locust(locust_argv(args, host, out_dir, master_port), out_dir, args.run_time,
                                              say, cluster, workers)
        after = _balancer_view(admin)
    finally:
        if cluster is not None:
            say("stopping the cluster ...")
            cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    try:
        entries, tally, phases = _read_results(out_dir)
    except (OSError, ValueError) as exc:
        say(f"capacity: locust wrote no results (exit code {code}): {exc}\n{_tail(out_dir / 'locust.log')}")
        return EXIT_HARNESS
    cores = (args.locust_workers + 1) if args.locust_workers else args.processes
    busy = cpu_seconds / max(args.run_time, 1e-9) / cores
    if busy > 0.85:
        notes.append(f"locust used {100 * busy:.0f}% of its {cores} core(s): the load generator may be "
                     "the limit, not the fleet; try --locust-workers")
    exceptions = _exceptions(out_dir)
    if exceptions:
        notes.append(f"the locustfile raised {exceptions} exception(s): see {out_dir / 'locust_exceptions.csv'}")
    summary = capacity_summary.summarize(entries, tally, expected_nodes=members,
                                         max_failure_ratio=args.max_failure_ratio, notes=notes, phases=phases,
                                         balancer=capacity_summary.balancer_delta(before, after))
    say(capacity_summary.render(summary))
    (out_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    say(f"details: {out_dir} (summary.json, locust.html, locust_*.csv, locust.log)")
    if code not in (0, None) or exceptions:
        say(f"capacity: locust exited with code {code}; see {out_dir / 'locust.log'}")
        return EXIT_HARNESS
    if any(note.startswith("interrupted") for note in notes):
        return EXIT_INTERRUPTED
    if any(note.startswith(("the cluster exited", "locust did not stop")) for note in notes):
        return EXIT_HARNESS
    return EXIT_PASSED if summary.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
