"""Text output of the benchmark: the progress line of a run and the final tables.

Rules of this module
--------------------
* Tables are Markdown, so docs/benchmarks.md can take them as printed.
* A figure that could not be measured prints as ``n/a``; a row made only of disturbed runs
  and a row with failed requests say so in the row itself.
* Pure: values in, strings out.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from loadtest.summary import PairedRatio, Row, RunRecord, Target

__all__ = ["LABELS", "format_rows", "format_rss", "format_scaling", "format_targets", "pair_line", "progress_line"]

LABELS = {
    "nginx": "nginx 1.22, 1 worker, hash $request_uri consistent, keepalive 64",
    "nginx-2w": "nginx 1.22, 2 workers on the same core (reuseport)",
    "haproxy": "HAProxy 2.6, 1 thread, balance uri whole, hash-type consistent",
    "pixring": "pixring, 1 worker, production defaults",
    "pixring-2w": "pixring, 2 workers on the same core",
    "nginx-tls": "nginx 1.22, 1 worker, TLS on the public side (self-signed P-256)",
    "pixring-tls": "pixring, 1 worker, TLS on the public side (the same certificate)",
    "skeleton": "loadtest.skeleton: pixring's design without its features (no access log)",
    "direct": "direct to one backend (no proxy; the load side's ceiling)",
}


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{suffix}"


def progress_line(index: int, total: int, record: RunRecord, *, retrying: bool) -> str:
    cpu = record.proxy_cpu_pct
    cpu_text = "" if cpu is None else f" proxy {cpu:.0f}% ({_num(record.cpu_us_per_request, 1)} µs/req)"
    busy = " ".join(f"{name} {value:.0f}%" for name, value in sorted(record.cpu_busy_pct.items()))
    flags = ""
    if record.failed:
        flags += f" FAILED {record.failed}"
    if record.disturbed:
        flags += " DISTURBED" + (", retrying" if retrying else ", kept (no retries left)")
    return (f"[{index}/{total}] {record.config} c={record.connections} round {record.round}: "
            f"{record.rps:,.0f} req/s p50 {record.p50_ms:.2f} ms p99 {record.p99_ms:.2f} ms{cpu_text}"
            f" | {busy} other {record.other_pct:.1f}% steal {record.steal_pct:.1f}% waited {record.waited_s:.0f}s{flags}")


def pair_line(index: int, total: int, ours: RunRecord, reference: RunRecord) -> str:
    """One back-to-back pair: both configurations' requests per CPU-second and their ratio."""
    mine, theirs = ours.requests_per_cpu_s, reference.requests_per_cpu_s
    ratio = mine / theirs if mine and theirs else None
    flags = " DISTURBED, left out" if ours.disturbed or reference.disturbed else ""
    return (f"[pair {index}/{total}] c={ours.connections}: {reference.config} {_num(theirs)} req per CPU-s, "
            f"{ours.config} {_num(mine)}: {_num(ratio, 3)}{flags}")


def format_scaling(results: Iterable[PairedRatio], *, seconds: int) -> str:
    out = [f"\nrequests per CPU-second, two workers ÷ one, from back-to-back pairs of {seconds} s runs",
           "\n| two workers ÷ one | connections | pairs used (left out) | median ratio | 95% interval of the median |",
           "|---|---|---|---|---|"]
    for result in results:
        interval = "n/a (too few pairs)" if result.low is None else f"{result.low:.3f} – {result.high:.3f}"
        out.append(f"| {result.ours} ÷ {result.reference} | {result.connections} | {result.pairs} ({result.dropped}) "
                   f"| {_num(result.median, 3)} | {interval} |")
    return "\n".join(out)


def _ratio_cell(ratios: Mapping[str, Mapping[str, float | None]], reference: str) -> str:
    ratio = ratios.get(reference)
    if ratio is None:
        return "—"
    return f"{_num(ratio['rps'], 2)} / {_num(ratio['cpu'], 2)}"


def format_rows(rows: Sequence[Row], *, duration_s: int, references: Sequence[str] = ("nginx", "haproxy")) -> str:
    out = []
    for connections in sorted({row.connections for row in rows}, reverse=True):
        group = [row for row in rows if row.connections == connections]
        out.append(f"\nwrk -t1 -c{connections}, {duration_s} s runs, medians over the rounds' undisturbed runs "
                   f"(ratios: same-round req/s / CPU efficiency)\n")
        out.append("| configuration | req/s (min–max) | p50 ms | p99 ms | proxy CPU % | CPU µs/req | req per CPU-s | "
                   + " | ".join(f"vs {r}" for r in references) + " | runs (dropped) |")
        out.append("|---|---|---|---|---|---|---|" + "---|" * len(references) + "---|")
        for row in group:
            name = LABELS.get(row.config, row.config)
            if row.failed:
                name += f" **{row.failed} failed requests**"
            if row.only_disturbed:
                name += " (disturbed runs only)"
            ratios = " | ".join(_ratio_cell(row.ratios, r) if r != row.config else "1.00 / 1.00" for r in references)
            out.append(f"| {name} | {_num(row.rps)} ({_num(row.rps_min)}–{_num(row.rps_max)}) | {row.p50_ms:.2f} | "
                       f"{row.p99_ms:.2f} | {_num(row.proxy_cpu_pct)} | {_num(row.cpu_us_per_request, 1)} | "
                       f"{_num(row.requests_per_cpu_s)} | {ratios} | {row.runs} ({row.dropped}) |")
    return "\n".join(out)


def format_targets(targets: Sequence[Target]) -> str:
    out = ["\n| target | goal | measured | verdict |", "|---|---|---|---|"]
    for target in targets:
        verdict = {True: "met", False: "**NOT MET**", None: "not measured"}[target.met]
        out.append(f"| {target.name} | {target.goal} | {_num(target.measured, 2)} | {verdict} |")
    return "\n".join(out)


def format_rss(rss: Mapping[str, Mapping[str, Sequence[int]]]) -> str:
    """``rss[config][phase]`` = KiB per worker, phases in the order given."""
    out = ["\n| configuration | " + " | ".join(f"RSS {phase} (MiB per worker)" for phase in _phases(rss)) + " |",
           "|---|" + "---|" * len(_phases(rss))]
    for config, phases in rss.items():
        cells = [", ".join(f"{kib / 1024:.1f}" for kib in phases.get(phase, ())) or "n/a" for phase in _phases(rss)]
        out.append(f"| {LABELS.get(config, config)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _phases(rss: Mapping[str, Mapping[str, Sequence[int]]]) -> list[str]:
    seen: list[str] = []
    for phases in rss.values():
        seen += [p for p in phases if p not in seen]
    return seen
