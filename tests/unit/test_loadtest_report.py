"""The benchmark's printed lines and tables."""

from __future__ import annotations

from loadtest.report import format_rows, format_rss, format_scaling, format_targets, pair_line, progress_line
from loadtest.summary import PairedRatio, RunRecord, Target, summarize


def record(config: str, rps: float, *, failed: int = 0, disturbed: bool = False, cpu_s: float | None = 4.0) -> RunRecord:
    return RunRecord(config=config, connections=64, round=1, attempt=1, requests=int(rps * 10), wall_s=10.0, rps=rps,
                     p50_ms=1.0, p90_ms=1.5, p99_ms=2.5, max_ms=7.0, failed=failed,
                     proxy_user_s=None if cpu_s is None else cpu_s / 2, proxy_system_s=None if cpu_s is None else cpu_s / 2,
                     other_pct=0.3, disturbed=disturbed, cpu_busy_pct={"cpu0": 99.0, "cpu1": 100.0})


def test_progress_line_names_the_run_and_flags_trouble():
    line = progress_line(3, 30, record("pixring", 41_000, failed=2, disturbed=True), retrying=True)
    assert line.startswith("[3/30] pixring c=64 round 1: 41,000 req/s")
    assert "FAILED 2" in line and "DISTURBED, retrying" in line
    assert "proxy" not in progress_line(1, 1, record("direct", 60_000, cpu_s=None), retrying=False)


def test_table_has_one_row_per_configuration_with_ratios_and_flags():
    rows = summarize([record("nginx", 50_000), record("pixring", 40_000, failed=5)])
    table = format_rows(rows, duration_s=8)
    lines = [line for line in table.splitlines() if line.startswith("| ") and "req/s" not in line]
    assert len(lines) == 2
    assert "**5 failed requests**" in lines[1]
    assert "0.80 / 0.80" in lines[1]  # same CPU seconds for fewer requests: both ratios 0.8


def test_targets_and_memory_tables_say_what_was_not_measured():
    table = format_targets([Target("p99", "<= 3 ms", 3.4, False), Target("rss", "< 80 MiB", None, None)])
    assert "| p99 | <= 3 ms | 3.40 | **NOT MET** |" in table
    assert "| rss | < 80 MiB | n/a | not measured |" in table
    memory = format_rss({"pixring": {"at rest": [40 * 1024], "peak under load": []}})
    assert "| 40.0 | n/a |" in memory


def test_pair_line_and_scaling_table_give_the_ratio_and_its_interval():
    line = pair_line(4, 30, record("pixring-2w", 38_000), record("pixring", 40_000, disturbed=True))
    assert line.startswith("[pair 4/30] c=64: pixring 100,000 req per CPU-s, pixring-2w 95,000: 0.950")
    assert line.endswith("DISTURBED, left out")
    table = format_scaling([PairedRatio("pixring-2w", "pixring", 64, 29, 1, 0.953, 0.91, 0.99),
                            PairedRatio("nginx-2w", "nginx", 8, 4, 0, 0.9, None, None)], seconds=1)
    assert "| pixring-2w ÷ pixring | 64 | 29 (1) | 0.953 | 0.910 – 0.990 |" in table
    assert "| nginx-2w ÷ nginx | 8 | 4 (0) | 0.900 | n/a (too few pairs) |" in table
