"""deploy/monitoring: the Grafana dashboard and the Prometheus alert rules name only metrics declared in
gateway/metrics.py, cover what an operator must see, and the rules file has the shape Prometheus loads
(every expression parses as PromQL)."""
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway import metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "prometheus-alerts.yaml"
NAME = re.compile(r"\bbrb_[a-z0-9_]+")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created")}


def declared() -> dict[str, str]:
    """Every series name the families of gateway/metrics.py expose -> its family."""
    names = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                for suffix in SUFFIXES[family.type]:
                    names[family.name + suffix] = family.name
    return names


def dashboard_exprs() -> list[str]:
    def walk(panels):
        for p in panels:
            yield from (t["expr"] for t in p.get("targets", []))
            yield from walk(p.get("panels", []))
    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_a_panel_or_an_alert_uses_is_declared_in_gateway_metrics(source):
    exprs = dashboard_exprs() if source == "dashboard" else [r["expr"] for r in alert_rules()]
    used = {name for expr in exprs for name in NAME.findall(expr)}
    assert used, source
    assert used <= set(declared()), f"{source} names undeclared metrics: {sorted(used - set(declared()))}"


def test_the_dashboard_shows_what_an_operator_must_see():
    families = {declared()[n] for expr in dashboard_exprs() for n in NAME.findall(expr)}
    must = {"brb_http_requests", "brb_http_request_seconds", "brb_outbox_backlog", "brb_outbox_oldest_pending_age_seconds",
            "brb_webhook_backlog", "brb_webhook_dead_letters", "brb_webhook_attempts", "brb_dispatcher_consumer_lag",
            "brb_policy_decisions", "brb_token_failures", "brb_audit_chain_head_seq", "brb_audit_chain_intact",
            "brb_worker_last_success_timestamp_seconds"}
    assert must <= families, sorted(must - families)
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    assert all(p["targets"] for p in dashboard["panels"] if p["type"] != "row")


def test_the_alert_file_is_prometheus_rule_groups_with_the_alerts_an_operator_needs():
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = [g["name"] for g in document["groups"]]
    assert len(names) == len(set(names))
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert "for" not in rule or DURATION.match(rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"critical", "warning"} and rule["annotations"]["summary"]
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    wanted = {  # what each must watch
        "BrbOutboxBacklogAging": "brb_outbox_oldest_pending_age_seconds", "BrbWebhookDeadLetters": "brb_webhook_dead_letters",
        "BrbAuditChainBroken": "brb_audit_chain_intact", "BrbWorkerStuck": "brb_worker_last_success_timestamp_seconds",
        "BrbDispatcherLagging": "brb_dispatcher_consumer_lag", "BrbTokenFailureSpike": "brb_token_failures_total",
    }
    for alert, metric in wanted.items():
        assert metric in exprs[alert], alert
    assert re.search(r"brb_audit_chain_intact\)?\s*==\s*0", exprs["BrbAuditChainBroken"])


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_expression_is_valid_promql(source):
    """What ``promtool check rules`` would parse first: each expression, by a PromQL parser from PyPI."""
    import promql_parser

    exprs = dashboard_exprs() if source == "dashboard" else [r["expr"] for r in alert_rules()]
    broken = []
    for expr in exprs:
        try:
            promql_parser.parse(expr.replace("$__rate_interval", "5m").replace("$__range", "1h"))
        except ValueError as exc:
            broken.append(f"{expr!r}: {exc}")
    assert exprs and not broken, broken
