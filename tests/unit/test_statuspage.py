"""The admin listener's HTML page (``balancer.statuspage``): what it shows, that it loads
nothing from elsewhere, and that names and metadata from discovery are escaped."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

from balancer.statuspage import rates_between, render_status_page


def member(node: str, state: str = "up", **changes) -> dict:
    m = {
        "id": node, "address": f"http://127.0.0.1:90{node[-1]}", "weight": 1.0, "meta": {"zone": "a"},
        "state": state, "ring_share": 0.5, "operator": None,
        "health_by_worker": {"0": {"state": state, "routable": state == "up", "ejections": 0, "ramp": 1.0,
                                   "last_probe": {"ok": state == "up", "result": "200" if state == "up" else
                                                  "GET /healthz: connection refused", "age_s": 0.4}}},
        "inflight": 2, "requests": {"2xx": 100, "5xx": 1}, "requests_total": 101, "attempts": 101, "shed": 0,
        "errors": {}, "bytes_out": 1000,
    }
    m.update(changes)
    return m


def status(**changes) -> dict:
    s = {
        "pixring": "0.1.0", "uptime_s": 12.5, "ready": True, "reason": "ok", "draining": False,
        "ring": {"algorithm": "multiprobe", "version": "abc123", "size": 42, "members": 2, "workers_agree": True,
                 "versions": ["abc123"]},
        "discovery": {"kind": "static", "ready": True, "stale": False, "detail": "", "last_success_age_s": 0.5},
        "panic": False,
        "members": [member("r1"), member("r2", "down")],
        "totals": {"requests": 202, "retries": 3},
        "workers": [{"index": 0, "pid": 4242, "ring_version": "abc123", "members": 2, "report_age_s": 0.3,
                     "draining": False, "pool_idle": 4}],
        "config": {},
    }
    s.update(changes)
    return s


class _Collect(HTMLParser):
    """Every tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    return parser


def test_members_with_their_state_and_links_to_the_machine_endpoints():
    page = parse(render_status_page(status()))
    states = {attrs["data-state"] for tag, attrs in page.tags if "data-state" in attrs}
    assert states == {"up", "down"}
    members = [attrs["data-member"] for tag, attrs in page.tags if "data-member" in attrs]
    assert members == ["r1", "r2"]
    links = {attrs["href"] for tag, attrs in page.tags if tag == "a"}
    assert {"/status", "/metrics", "/readyz"} <= links
    text = "".join(page.text)
    assert "READY" in text and "50.0%" in text  # the ring share
    assert "GET /healthz: connection refused" in text  # a down member says why
    assert any(tag == "meta" and attrs.get("http-equiv") == "refresh" for tag, attrs in page.tags)


def test_nothing_is_loaded_from_elsewhere():
    page = render_status_page(status(members=[member("r1", meta={"site": "http://evil.example/x.js"})]))
    tags = parse(page).tags
    assert not [t for t, _ in tags if t in ("script", "img", "link", "iframe", "object", "embed")]
    for tag, attrs in tags:
        for name in ("src", "href", "action"):
            value = attrs.get(name)
            assert value is None or value.startswith("/"), (tag, attrs)
    assert "url(" not in page and "@import" not in page


def test_member_names_metadata_and_hot_keys_are_escaped():
    evil = '<script>alert("x")</script>'
    workers = copy.deepcopy(status()["workers"])
    workers[0]["hot_keys"] = [{"key": f"/a.jpg?w=400&{evil}", "share": 0.31, "replicas": ["r1", evil]}]
    page = render_status_page(status(members=[member(evil, meta={evil: evil})], workers=workers,
                                     discovery={"kind": "consul", "ready": True, "stale": True,
                                                "detail": evil, "last_success_age_s": 9.0}))
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 5  # the id, twice in attributes, key, value, hot key, replica, detail
    assert "31%" in page and "/a.jpg?w=400&amp;" in page


def test_hot_keys_and_coalescing_show_when_workers_report_them_and_are_absent_otherwise():
    without = render_status_page(status())
    assert "leaders" not in without
    workers = copy.deepcopy(status()["workers"])
    workers[0]["hot_keys"] = []
    workers[0]["coalescing"] = {"leaders": 7, "followers": 30, "uncoalesced": 100}
    page = render_status_page(status(workers=workers))
    assert "7 leaders, 30 followers, 100 alone" in page


def test_not_ready_panic_and_ring_disagreement_are_said_first():
    page = render_status_page(status(ready=False, reason="worker 0: no member in the ring", panic=True,
                                     ring={**status()["ring"], "workers_agree": False, "versions": ["a", "b"]}))
    text = "".join(parse(page).text)
    assert text.index("NOT READY") < text.index("Members")
    assert "worker 0: no member in the ring" in text and "PANIC MODE" in text
    assert "different rings (a, b)" in text


def test_an_empty_status_still_renders():
    page = render_status_page({"ready": False, "reason": "0 of 1 workers listening", "members": [], "workers": []})
    assert "No member known" in page and "No worker is serving" in page


def test_rates_between_two_samples():
    before = status()
    after = copy.deepcopy(before)
    after["members"][0].update(requests_total=301, requests={"2xx": 295, "5xx": 6}, errors={"timeout": 2})
    rates = rates_between(before, after, 2.0)
    assert rates["r1"] == {"requests": 100.0, "errors": 3.5}  # (6-1 5xx + 2 timeouts) / 2 s
    assert rates["r2"] == {"requests": 0.0, "errors": 0.0}
    assert rates_between(None, after, 2.0) == {}
    restarted = copy.deepcopy(before)
    restarted["members"][0]["requests_total"] = 0
    assert "r1" not in rates_between(before, restarted, 2.0)  # counters went back: no rate
    page = render_status_page(after, rates)
    assert re.search(r">100\.0<", page) and re.search(r">3\.50<", page)


def test_per_source_counts_show_when_sources_are_configured_with_their_names_escaped():
    assert "<h2>Sources</h2>" not in render_status_page(status(sources={}))
    page = render_status_page(status(sources={
        "acme": {"admitted": 1200, "refused": 3},
        "<b>evil</b>": {"admitted": 1, "refused": 0, "limited": 2},
    }))
    text = " ".join(parse(page).text)
    assert "<h2>Sources</h2>" in page
    assert "acme" in text and "1,200" in text and "limited" in text
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page
