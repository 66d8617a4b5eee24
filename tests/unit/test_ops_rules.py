"""The alerting rules and the dashboard in ``ops/``: every metric they name is one the balancer
or the renderer exports (a labelled metric counts once it is declared, before its first sample),
and the rules pass Prometheus's own checker and their unit tests (``promtool``, from Debian's
``prometheus`` package, installed when missing as the Ansible test installs systemd-analyze)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from balancer.metrics import METRIC_HELP
from loadtest.tools import ensure_tools
from renderer.metrics import declared_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "ops" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "pixring.json"
_NAME = re.compile(r"\bpixring_[a-z0-9_]+\b")
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def exported() -> set[str]:
    """Every series name a scrape of a balancer or a renderer can carry."""
    kinds = {name: kind for name, (kind, _) in METRIC_HELP.items()}
    kinds.update({name: kind for name, kind, _, _ in declared_metrics()})
    names = set(kinds)
    for name, kind in kinds.items():
        if kind == "histogram":
            names.update(name + suffix for suffix in _HISTOGRAM_SERIES)
    return names


def unknown_metrics(text: str) -> set[str]:
    return set(_NAME.findall(text)) - exported()


def rule_texts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] + json.dumps(rule.get("annotations", {}))
            for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dash["panels"] for target in panel.get("targets", [])]


def test_the_check_itself_finds_a_metric_nobody_exports():
    assert unknown_metrics('rate(pixring_requests_total[5m]) + pixring_no_such_thing') == {"pixring_no_such_thing"}
    assert unknown_metrics("histogram_quantile(0.99, rate(pixring_renderer_render_seconds_bucket[5m]))") == set()


def test_every_metric_the_rules_name_is_exported():
    texts = rule_texts()
    assert len(texts) >= 7
    assert {name for text in texts for name in unknown_metrics(text)} == set()


def test_the_rules_cover_what_an_operator_is_paged_for():
    names = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert {"PixringMemberDown", "PixringPanicMode", "PixringDiscoveryStale", "PixringRetryBudgetExhausted",
            "PixringErrorRatio", "PixringP99OverTarget", "PixringWorkersDisagreeOnRing"} <= names


def test_every_metric_the_dashboard_charts_is_exported_and_every_panel_has_a_query():
    dash = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    assert {name for expr in exprs for name in unknown_metrics(expr)} == set()
    charts = [p for p in dash["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in charts)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    # Both halves of the tier are on it.
    assert any("pixring_renderer_" in e for e in exprs) and any("pixring_requests_total" in e for e in exprs)


@pytest.fixture(scope="module")
def promtool() -> str:
    ensure_tools(["promtool"], log=print)
    return "promtool"


def test_promtool_accepts_the_rules_and_their_unit_tests_pass(promtool):
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # Each alert fires on the series that should fire it and not on healthy ones.
    tested = subprocess.run([promtool, "test", "rules", str(RULES_TEST)],
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
