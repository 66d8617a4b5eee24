"""The admin listener's front page: ``/status`` as HTML a person reads in a browser.

Pure: the status dict (``AdminState.status()``) and, for rates, the previous sample in,
one HTML document out. No I/O, no clock of its own.

Rules of this module
--------------------
* Self-contained: inline CSS, no script, no image, no font, no link to another host. The
  admin listener is private (behind a firewall, on a laptop offline) and a page that loads
  anything from elsewhere would show half of itself there, or leak that the page was opened.
* Refreshes itself with ``<meta http-equiv="refresh">`` (HTML Living Standard, "Shared
  declarative refresh steps"), so it works with scripts disabled.
* Everything that comes from outside pixring's own code (member ids, addresses, metadata
  from Consul, discovery details, hot keys, which are client URLs) is escaped with
  ``html.escape``: a member registered as ``<script>`` shows as text.
* Rates need two samples: ``rates_between`` turns two status dicts into per-member
  requests and errors per second. The first page after a start shows totals only.
* Fields other engineers add later (``hot_keys``, ``coalescing`` in a worker's report)
  are rendered when present and left out when absent: the page never fails on a status
  dict that lacks them.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable, Mapping

__all__ = ["REFRESH_S", "rates_between", "render_status_page"]

REFRESH_S = 2

# A state -> the CSS class that colours it: green routes, amber routes with care, red does not.
_STATE_CLASS = {
    "up": "ok", "probation": "warn", "pending": "warn", "mixed": "warn", "draining": "warn",
    "maintenance": "warn", "no-weight": "warn", "down": "bad", "ejected": "bad",
}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em} h2{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.2em 0} th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#176f2c;font-weight:600} .warn{color:#9a6700;font-weight:600} .bad{color:#b3261e;font-weight:600}
.banner{padding:.5em .8em;border-radius:4px;margin:.4em 0} .banner.ok{background:#e6f4ea} .banner.bad{background:#fce8e6}
.banner.warn{background:#fff4d6} .muted{color:#666} code{font-size:.95em}
nav a{margin-right:1em}
""".strip()


def rates_between(previous: Mapping[str, Any] | None, current: Mapping[str, Any], seconds: float) -> dict[str, dict[str, float]]:
    """Member id -> ``{"requests": r/s, "errors": r/s}`` between two status dicts taken
    ``seconds`` apart. Errors are 5xx answers plus failed exchanges (no answer at all).
    A member new since ``previous``, or a counter that went backwards (a restart), has no rate."""
    if previous is None or seconds <= 0:
        return {}
    before = {m["id"]: m for m in previous.get("members", [])}
    out: dict[str, dict[str, float]] = {}
    for member in current.get("members", []):
        old = before.get(member["id"])
        if old is None:
            continue
        requests = member.get("requests_total", 0) - old.get("requests_total", 0)
        errors = _errors(member) - _errors(old)
        if requests < 0 or errors < 0:
            continue
        out[member["id"]] = {"requests": requests / seconds, "errors": errors / seconds}
    return out


def _errors(member: Mapping[str, Any]) -> int:
    return member.get("requests", {}).get("5xx", 0) + sum(member.get("errors", {}).values())


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _number(value: float | None, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _state_cell(state: str, operator: str | None) -> str:
    css = _STATE_CLASS.get(state, "warn")
    extra = f' <span class="muted">(operator: {_e(operator)})</span>' if operator else ""
    return f'<span class="{css}" data-state="{_e(state)}">{_e(state)}</span>{extra}'


def _worst_probe(health_by_worker: Mapping[str, Mapping[str, Any]]) -> str:
    """The last probe a person should see: a failed one if any worker saw one."""
    probes = [view["last_probe"] for view in health_by_worker.values() if view.get("last_probe")]
    if not probes:
        return '<span class="muted">none yet</span>'
    probe = min(probes, key=lambda p: (p.get("ok", False), -p.get("age_s", 0.0)))
    css = "ok" if probe.get("ok") else "bad"
    return f'<span class="{css}">{_e(probe.get("result"))}</span> <span class="muted">{_number(probe.get("age_s"))}s ago</span>'


def _members(status: Mapping[str, Any], rates: Mapping[str, Mapping[str, float]]) -> str:
    members = status.get("members", [])
    if not members:
        return '<p class="bad">No member known: discovery has not answered yet, or it lists nobody.</p>'
    rows = []
    for m in members:
        views = m.get("health_by_worker", {}).values()
        ejections = max((v.get("ejections", 0) for v in views), default=0)
        ramps = [v.get("ramp", 1.0) for v in views if "ramp" in v]
        ramp = min(ramps) if ramps else None
        rate = rates.get(m["id"])
        meta = ", ".join(f"{_e(k)}={_e(v)}" for k, v in sorted((m.get("meta") or {}).items()))
        share = m.get("ring_share")
        rows.append([
            f'<span data-member="{_e(m["id"])}">{_e(m["id"])}</span>',
            f"<code>{_e(m.get('address'))}</code>",
            _state_cell(m.get("state", "?"), m.get("operator")),
            _number(m.get("weight"), "g"),
            "–" if share is None else f"{100 * share:.1f}%",
            str(m.get("inflight", 0)),
            _number(rate["requests"]) if rate else "–",
            _number(rate["errors"], ".2f") if rate else "–",
            f"{m.get('requests_total', 0):,}",
            ", ".join(f"{_e(kind)} {n:,}" for kind, n in sorted(m.get("errors", {}).items())) or "0",
            f"{m.get('shed', 0):,}",
            str(ejections),
            "–" if ramp is None else ("done" if ramp >= 1.0 else f"{100 * ramp:.0f}%"),
            _worst_probe(m.get("health_by_worker", {})),
            meta or '<span class="muted">–</span>',
        ])
    return _table(
        ["member", "address", "state", "weight", "ring share", "in flight", "req/s", "errors/s", "requests",
         "failed exchanges", "shed", "ejections", "slow start", "last probe", "metadata"],
        rows, numeric=(3, 4, 5, 6, 7, 8, 10, 11),
    )


def _discovery(status: Mapping[str, Any]) -> str:
    d = status.get("discovery")
    if not d:
        return '<p class="bad">No worker has reported yet.</p>'
    age = d.get("last_success_age_s")
    fresh = '<span class="bad">stale</span>' if d.get("stale") else ('<span class="ok">fresh</span>' if d.get("ready") else '<span class="warn">not ready</span>')
    return _table(["source", "state", "last good answer", "detail"], [[
        # A static list has no age (it never asks anyone): only a source that asks and has not
        # been answered yet is "never".
        _e(d.get("kind")), fresh, ("–" if d.get("ready") else "never") if age is None else f"{age:.1f}s ago",
        _e(d.get("detail")) or "–",
    ]])


def _hot_keys(worker: Mapping[str, Any]) -> str:
    keys = worker.get("hot_keys")
    if keys is None:
        return '<span class="muted">–</span>'
    if not keys:
        return '<span class="muted">none</span>'
    return "<br>".join(
        f"<code>{_e(k.get('key'))}</code> {100 * float(k.get('share', 0)):.0f}% → {_e(', '.join(map(str, k.get('replicas', []))))}"
        for k in keys
    )


def _coalescing(worker: Mapping[str, Any]) -> str:
    c = worker.get("coalescing")
    if c is None:
        return '<span class="muted">–</span>'
    return (f"{int(c.get('leaders', 0)):,} leaders, {int(c.get('followers', 0)):,} followers, "
            f"{int(c.get('uncoalesced', 0)):,} alone")


def _workers(status: Mapping[str, Any]) -> str:
    workers = status.get("workers", [])
    if not workers:
        return '<p class="bad">No worker is serving.</p>'
    ring = status.get("ring", {})
    agree = ring.get("workers_agree", True)
    note = "" if agree else (f'<p class="bad">The workers route with different rings ({_e(", ".join(map(str, ring.get("versions", []))))}): '
                            "their memberships differ, keys may land on different nodes.</p>")
    rows = [[
        str(w.get("index")), str(w.get("pid")), f"<code>{_e(w.get('ring_version'))}</code>", str(w.get("members")),
        f"{w.get('report_age_s', 0):.1f}s", "yes" if w.get("draining") else "no", str(w.get("pool_idle", 0)),
        _hot_keys(w), _coalescing(w),
    ] for w in workers]
    return note + _table(["worker", "pid", "ring version", "members", "reported", "draining", "idle connections",
                          "hot keys", "coalescing"], rows, numeric=(0, 1, 3, 4, 6))


def _ring(ring: Mapping[str, Any]) -> str:
    agree = '<span class="ok">yes</span>' if ring.get("workers_agree", True) else '<span class="bad">no</span>'
    version = f"<code>{_e(ring.get('version'))}</code>"
    return _table(["algorithm", "version", "points", "members", "workers agree"],
                  [[_e(ring.get("algorithm")), version, str(ring.get("size", 0)), str(ring.get("members", 0)), agree]])


def _sources(status: Mapping[str, Any]) -> str:
    """Requests per configured source (``-``: a Host no source names); empty without sources."""
    sources = status.get("sources") or {}
    if not sources:
        return ""
    results = sorted({result for counts in sources.values() for result in counts})
    rows = [[_e(name), *(f"{counts.get(result, 0):,}" for result in results)] for name, counts in sorted(sources.items())]
    return "<h2>Sources</h2>\n" + _table(["source", *(_e(r) for r in results)], rows,
                                        numeric=range(1, len(results) + 1))


def render_status_page(status: Mapping[str, Any], rates: Mapping[str, Mapping[str, float]] | None = None,
                       *, refresh_s: int = REFRESH_S) -> str:
    """The whole page: readiness first (what an operator asks first), then members, discovery,
    ring and workers, then the totals, with links to the machine-readable endpoints."""
    rates = rates or {}
    ready = bool(status.get("ready"))
    panic = bool(status.get("panic"))
    css = "bad" if not ready else ("warn" if panic or status.get("reason", "ok") != "ok" else "ok")
    headline = "READY" if ready else "NOT READY"
    banners = [f'<div class="banner {css}" id="readiness"><strong>{headline}</strong>: {_e(status.get("reason"))}</div>']
    if panic:
        banners.append('<div class="banner bad" id="panic"><strong>PANIC MODE</strong>: too few healthy members, '
                       "routing over all of them</div>")
    if status.get("draining"):
        banners.append('<div class="banner warn"><strong>DRAINING</strong>: shutting down</div>')
    ring = status.get("ring", {})
    totals = status.get("totals", {})
    totals_rows = [[_e(name.replace("_", " ")), f"{value:,}" if isinstance(value, int) else _e(value)]
                   for name, value in totals.items()]
    members = status.get("members", [])
    up = sum(1 for m in members if m.get("state") == "up")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{int(refresh_s)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pixring {headline.lower()}: {up} of {len(members)} members up</title>
<style>{_CSS}</style></head><body>
<h1>pixring balancer <span class="muted">{_e(status.get('pixring'))}, up {_number(status.get('uptime_s'), '.0f')}s</span></h1>
<nav><a href="/status">/status (JSON)</a><a href="/metrics">/metrics</a><a href="/readyz">/readyz</a><a href="/healthz">/healthz</a></nav>
{"".join(banners)}
<h2>Members <span class="muted">({up} of {len(members)} up)</span></h2>
{_members(status, rates)}
<h2>Discovery</h2>
{_discovery(status)}
<h2>Ring</h2>
{_ring(ring)}
<h2>Workers</h2>
{_workers(status)}
{_sources(status)}
<h2>Totals</h2>
{_table(["counter", "value"], totals_rows, numeric=(1,))}
<p class="muted">Refreshes every {int(refresh_s)}s. Rates are over the time since the previous page load.</p>
</body></html>
"""
