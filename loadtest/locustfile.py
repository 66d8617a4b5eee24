"""The capacity test's traffic for locust: imgix-like image requests against a pixring balancer.

Run it through ``python -m loadtest.capacity`` (which starts a cluster, runs locust headless
and summarizes), or with locust itself::

    .venv/bin/locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:8080 -u 10 -r 10 -t 30s

Each simulated user loops without think time (a closed loop: N users keep N requests in
flight, which is what a capacity test varies) over ``loadtest.traffic``'s catalogue: a URL
drawn with Zipf-like popularity, sent as its canonical spelling or, for a share of requests,
as an equivalent one (reordered, aliased, defaults spelled out, junk added...). Every answer
is tallied by the node that served it (the balancer's node header) and the reference
renderer's cache outcome (``X-Render-Cache``), per group of equivalent URLs. After a 503
or a 429 with ``Retry-After`` (the fleet shedding load) a user waits what the answer says
before its next request, as a well-behaved client does (``loadtest.retry_after``).

Options (locust's own mechanism, so each is also a ``LOCUST_*`` environment variable and a
config-file key; https://docs.locust.io/en/stable/configuration.html and the custom-argument
example https://github.com/locustio/locust/blob/master/examples/add_command_line_argument.py):

    --pixring-sources LIST       comma-separated source paths, or @FILE with one per line
                                 (default: the sample images `pixring up` generates)
    --pixring-urls-per-source N  distinct renders per source (default 40)
    --pixring-zipf S             popularity exponent; 0 is uniform (default 0.8)
    --pixring-variant-share F    share of requests spelled non-canonically (default 0.25)
    --pixring-seed N             seed of the catalogue and the users' draws (default 1)
    --pixring-node-header NAME   the balancer's node header (default X-Pixring-Node)
    --pixring-cache-header NAME  the node's cache-outcome header (default X-Render-Cache)
    --pixring-accept VALUE       the Accept header sent, for auto=format (default: Chrome's)
    --pixring-think-time S       seconds a user waits between requests (default 0)
    --pixring-tally FILE         where to write the node/cache/affinity tally when locust quits
    --pixring-phases FILE        where to write each phase's figures when locust quits
    --pixring-warm-up S          seconds of load first that are not counted (default 0)
    --pixring-find-capacity      raise the users in steps until a step breaks a limit
    --pixring-start-users N, --pixring-step-users N, --pixring-step-time S, --pixring-max-users N
                                 the steps (defaults 10, 10, 15 s, 1000)
    --pixring-max-p99 MS, --pixring-max-error-ratio F
                                 the limits a step must hold (defaults 1000 ms, 0.01)

Rules of this file
------------------
* Only locust imports it: locust patches the process with gevent on import, so the tests
  import the pure modules (``loadtest.traffic``, ``spellings``, ``tally``) and run this file in
  a locust process.
* FastHttpUser (geventhttpclient): several times less CPU per request than HttpUser, so the
  load generator is less often the bottleneck of a capacity test
  (https://docs.locust.io/en/stable/increase-performance.html). It sends the target as given
  but for unreserved escapes, which ``loadtest.spellings`` never writes.
* Statistics are grouped by source path (``name=``), so locust's table has one row per
  image rather than one per URL.
* With ``--processes``/``--worker``, each worker sends its tally to the master with its
  statistics (``report_to_master``/``worker_report`` events,
  https://docs.locust.io/en/stable/api.html#event-hooks) and the master writes the sum.
* The load follows ``PixringShape`` (locust's ``LoadTestShape``, which runs on the master
  only: https://docs.locust.io/en/stable/custom-load-shape.html), planned by ``loadtest.steps``:
  a warm-up that is not counted, then ``-u`` users until ``-t``, or steps of rising load. At
  each phase boundary it snapshots locust's running totals (on a master, the sum of its
  workers' reports, which come every second: a step's edges blur by that much), and with
  ``--pixring-find-capacity`` it ends the run after the first step that breaks a limit.
* The CSV files are flushed every second (``locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC``,
  https://docs.locust.io/en/stable/retrieving-stats.html), so ``loadtest.capacity`` can show
  progress from ``*_stats_history.csv`` while the run goes.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import locust.runners
import locust.stats
from locust import FastHttpUser, LoadTestShape, events, task
from locust.runners import WorkerRunner

# locust puts this file's directory on sys.path, not the repository's; `loadtest` is not an
# installed package (pyproject.toml installs pixring, balancer, discovery and renderer).
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from loadtest import steps, traffic  # noqa: E402
from loadtest.retry_after import retry_after_seconds  # noqa: E402
from loadtest.spellings import equivalent_spelling  # noqa: E402
from loadtest.tally import Tally  # noqa: E402

locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 1
# A worker reports its statistics to the master every 3 s by default; a step's edges on the
# master blur by that much, so report every second (a few small messages more).
locust.runners.WORKER_REPORT_INTERVAL = 1.0

# What Chrome sends for an <img>: AVIF and WebP named, so auto=format picks AVIF.
CHROME_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    add = parser.add_argument
    add("--pixring-sources", env_var="LOCUST_PIXRING_SOURCES", default="",
        help="source image paths, comma-separated, or @FILE with one per line (default: pixring's samples)")
    add("--pixring-urls-per-source", env_var="LOCUST_PIXRING_URLS_PER_SOURCE", type=int,
        default=traffic.DEFAULT_URLS_PER_SOURCE, help="distinct renders per source image")
    add("--pixring-zipf", env_var="LOCUST_PIXRING_ZIPF", type=float, default=traffic.DEFAULT_ZIPF_EXPONENT,
        help="Zipf exponent of URL popularity (0 = uniform)")
    add("--pixring-variant-share", env_var="LOCUST_PIXRING_VARIANT_SHARE", type=float, default=0.25,
        help="share of requests spelled non-canonically but equivalently")
    add("--pixring-seed", env_var="LOCUST_PIXRING_SEED", type=int, default=1,
        help="seed of the URL catalogue and of the users' draws")
    add("--pixring-node-header", env_var="LOCUST_PIXRING_NODE_HEADER", default="X-Pixring-Node",
        help="response header naming the node that served (the balancer's node_header)")
    add("--pixring-cache-header", env_var="LOCUST_PIXRING_CACHE_HEADER", default="X-Render-Cache",
        help="response header with the node's cache outcome (hit, hit-disk, miss)")
    add("--pixring-accept", env_var="LOCUST_PIXRING_ACCEPT", default=CHROME_IMAGE_ACCEPT,
        help="Accept header sent with every request (auto=format negotiates on it)")
    add("--pixring-think-time", env_var="LOCUST_PIXRING_THINK_TIME", type=float, default=0.0,
        help="seconds each user waits between requests (0 = closed loop)")
    add("--pixring-tally", env_var="LOCUST_PIXRING_TALLY", default="", include_in_web_ui=False,
        help="file to write the per-node, cache and affinity tally to (JSON) when locust quits")
    add("--pixring-phases", env_var="LOCUST_PIXRING_PHASES", default="", include_in_web_ui=False,
        help="file to write each phase's snapshots to (JSON) when locust quits")
    add("--pixring-warm-up", env_var="LOCUST_PIXRING_WARM_UP", type=float, default=0.0,
        help="seconds of load at the start that are not counted (cold caches)")
    add("--pixring-find-capacity", env_var="LOCUST_PIXRING_FIND_CAPACITY", action="store_true", default=False,
        help="raise the users in steps until a step breaks --pixring-max-p99 or --pixring-max-error-ratio")
    add("--pixring-start-users", env_var="LOCUST_PIXRING_START_USERS", type=int, default=10,
        help="users of the first step")
    add("--pixring-step-users", env_var="LOCUST_PIXRING_STEP_USERS", type=int, default=10,
        help="users added at each step")
    add("--pixring-step-time", env_var="LOCUST_PIXRING_STEP_TIME", type=float, default=15.0,
        help="seconds each step lasts")
    add("--pixring-max-users", env_var="LOCUST_PIXRING_MAX_USERS", type=int, default=1000,
        help="the last step's users at most")
    add("--pixring-max-p99", env_var="LOCUST_PIXRING_MAX_P99", type=float, default=1000.0,
        help="a step whose p99 (ms) is over this broke")
    add("--pixring-max-error-ratio", env_var="LOCUST_PIXRING_MAX_ERROR_RATIO", type=float, default=0.01,
        help="a step whose share of failed requests is over this broke")


class _Model:
    """The traffic of this process, built once from the parsed options."""

    def __init__(self, options: Any) -> None:
        sources = _sources(options.pixring_sources) or traffic.DEFAULT_SOURCES
        if not 0.0 <= options.pixring_variant_share <= 1.0:
            raise ValueError(f"--pixring-variant-share must be within 0-1, not {options.pixring_variant_share}")
        self.catalog = traffic.build_catalog(sources, options.pixring_urls_per_source, options.pixring_seed)
        self.popularity = traffic.Popularity(len(self.catalog), options.pixring_zipf)
        self.variant_share = options.pixring_variant_share
        self.seed = options.pixring_seed
        self.node_header = options.pixring_node_header
        self.cache_header = options.pixring_cache_header
        self.request_headers = {"Accept": options.pixring_accept}
        self.think_time = max(0.0, options.pixring_think_time)


def _sources(text: str) -> list[str]:
    if text.startswith("@"):
        lines = Path(text[1:]).read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [part.strip() for part in text.split(",") if part.strip()]


_model: _Model | None = None
_environment: Any = None
_tally = Tally()
_user_numbers = itertools.count()


@events.init.add_listener
def _build_model(environment: Any, **_kw: Any) -> None:
    global _model, _environment
    _environment = environment
    if environment.parsed_options is not None:
        _model = _Model(environment.parsed_options)


@events.test_start.add_listener
def _mark_start(environment: Any, **_kw: Any) -> None:
    # The summary's clock starts here: locust's per-entry start is its first answer.
    if not isinstance(environment.runner, WorkerRunner):
        _tally.started = time.time()


@events.report_to_master.add_listener
def _send_tally(client_id: str, data: dict[str, Any]) -> None:
    global _tally
    data["pixring_tally"] = _tally.to_json()
    _tally = Tally()


@events.worker_report.add_listener
def _receive_tally(client_id: str, data: dict[str, Any]) -> None:
    if "pixring_tally" in data:
        _tally.merge(Tally.from_json(data["pixring_tally"]))


@events.quit.add_listener
def _write_tally(exit_code: int, **_kw: Any) -> None:
    # `quit` fires after the runner stopped every user (and, on a master, after the workers'
    # last reports), so the tally is complete; `quitting` fires before that on a SIGTERM.
    environment = _environment
    options = environment.parsed_options if environment is not None else None
    path = options.pixring_tally if options is not None else ""
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        json.dump(_tally.to_json(), out)
    os.replace(tmp, path)  # a reader never sees half a file


def _snapshot() -> steps.Snapshot:
    total = _environment.runner.stats.total
    return steps.Snapshot(time.time(), total.num_requests, total.num_failures, dict(total.response_times))


class PixringShape(LoadTestShape):
    """The run's load over time (``loadtest.steps``): a warm-up, then the load or the steps.

    ``use_common_options``: it reads ``-u``, ``-r`` and ``-t`` itself, and ends the run at
    ``-t`` (locust does not bound a shape's run by ``-t`` on its own)."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.schedule: steps.Schedule | None = None
        self.current: int | None = None
        self.limits = steps.Limits()
        self.find_capacity = False
        self.spawn_rate = 1.0
        self.records: list[dict[str, Any]] = []  # one per phase begun: phase, start and end snapshots
        self.stopped_by: str | None = None

    def _plan(self) -> None:
        options = _environment.parsed_options
        users = int(options.num_users or 1)
        run_time = float(options.run_time or 365 * 86400)  # no -t: until stopped
        self.find_capacity = bool(options.pixring_find_capacity)
        self.limits = steps.Limits(options.pixring_max_error_ratio, options.pixring_max_p99)
        self.schedule = steps.Schedule(steps.plan_phases(
            run_time_s=run_time, users=users, warm_up_s=options.pixring_warm_up, find_capacity=self.find_capacity,
            start_users=options.pixring_start_users, step_users=options.pixring_step_users,
            step_s=options.pixring_step_time, max_users=options.pixring_max_users))
        self.spawn_rate = float(options.spawn_rate or 0) or None  # None: each phase's users within a second

    def tick(self):
        if self.schedule is None:
            self._plan()
        assert self.schedule is not None
        index = self.schedule.index_at(self.get_run_time())
        if index != self.current:
            self.close_phase()
            if index is not None and self.stopped_by is None:
                phase = self.schedule.phases[index]
                self.records.append({"phase": steps.asdict(phase), "start": _snapshot().to_json(), "end": None})
            self.current = index
        if index is None or self.stopped_by is not None:
            return None
        phase = self.schedule.phases[index]
        return phase.users, self.spawn_rate or float(max(phase.users, 1))

    def close_phase(self) -> None:
        """End the running phase's record; a step that broke a limit ends the run."""
        if not self.records or self.records[-1]["end"] is not None:
            return
        record = self.records[-1]
        record["end"] = _snapshot().to_json()
        phase = steps.Phase(**record["phase"])
        figures = steps.figures_of(phase, steps.Snapshot.from_json(record["start"]),
                                   steps.Snapshot.from_json(record["end"]))
        verdict = steps.breach(figures, self.limits) if phase.counted else None
        if verdict is not None and self.find_capacity:
            self.stopped_by = f"{phase.name} ({phase.users} users): {verdict[1]}"


@events.quit.add_listener
def _write_phases(exit_code: int, **_kw: Any) -> None:
    environment = _environment
    options = environment.parsed_options if environment is not None else None
    path = options.pixring_phases if options is not None else ""
    shape = environment.shape_class if environment is not None else None
    if not path or isinstance(environment.runner, WorkerRunner) or not isinstance(shape, PixringShape):
        return
    shape.close_phase()  # a run stopped early (Ctrl-C, -t) ends its last phase now
    doc = {"phases": shape.records, "stopped_by": shape.stopped_by, "find_capacity": shape.find_capacity,
           "limits": steps.asdict(shape.limits)}
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        json.dump(doc, out)
    os.replace(tmp, path)


class ImageClient(FastHttpUser):
    """A client of an image CDN: one request after another, drawn from the catalogue."""

    def wait_time(self) -> float:
        think = _model.think_time if _model is not None else 0.0
        told, self.told_to_wait = self.told_to_wait, 0.0
        return max(think, told)

    def on_start(self) -> None:
        if _model is None:
            raise RuntimeError("the pixring traffic model was not built (locust's init event did not run)")
        self.model = _model
        self.told_to_wait = 0.0  # seconds a Retry-After asked for, waited once
        # Per user and reproducible: the same seed asks for the same sequences; with several
        # locust processes, each worker's users get sequences of their own.
        worker = getattr(self.environment.runner, "worker_index", 0)
        self.rng = random.Random(f"pixring-capacity-user-{_model.seed}-{worker}-{next(_user_numbers)}")

    @task
    def image(self) -> None:
        model = self.model
        target = model.catalog[model.popularity.draw(self.rng)]
        variant = self.rng.random() < model.variant_share
        url = equivalent_spelling(target, self.rng) if variant else target.url
        response = self.client.get(url, name=target.path, headers=model.request_headers)
        status, headers = response.status_code, response.headers
        if status and headers is not None:
            _tally.record(target.url, variant, headers.get(model.node_header), headers.get(model.cache_header))
        # A Retry-After on a 503 or a 429 is waited out, as a well-behaved client does (on a
        # 3xx it means something else, RFC 9110 section 10.2.3).
        told = status in (429, 503) and headers is not None
        wait = retry_after_seconds(headers.get("Retry-After")) if told else None
        if wait is not None:
            self.told_to_wait = wait
        # The same rule as locust's own failure count (FastHttpSession: no answer, or >= 400),
        # but a node's 503 with Retry-After is load shed, told apart. pixring's own 503s
        # (no healthy node, say) stay failures: a fleet that is down must fail the gate.
        node = headers.get(model.node_header) if headers is not None else None
        if not status:
            error = getattr(response, "error", None)
            _tally.record_failure(type(error).__name__ if error is not None else "no answer")
        elif status == 503 and wait is not None and node:
            _tally.record_shed(node)
        elif status >= 400:
            # Who answered: a node names itself in the node header; pixring's own answers
            # (no healthy member, a bad request) carry none.
            _tally.record_failure(f"HTTP {status} from node {node}" if node else f"HTTP {status} from pixring")
