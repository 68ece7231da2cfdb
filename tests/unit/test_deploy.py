"""deploy/ is written for production; no Docker engine runs here, so these tests parse it and check
that it runs what the code provides and configures what the settings read."""
import re
from pathlib import Path

import pytest
import yaml

from gateway.cli import app as cli
from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
K8S = [doc for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text()) if doc]
SETTING_ENV = {"BRB_" + name.upper() for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS", "BRB_SECRETS_DIR"}
COMMANDS = {c.name or c.callback.__name__ for c in cli.registered_commands} | {g.name for g in cli.registered_groups}
SECRETS = {"BRB_PSEUDONYM_KEY", "BRB_ENCRYPTION_KEYS", "BRB_AUDIT_CHAIN_KEY"}


def gateway_services():
    return {name: svc for name, svc in COMPOSE["services"].items() if str(svc.get("image", "")).startswith("berichtenbox")}


def test_compose_runs_every_process_of_the_gateway_on_kafka_kraft_and_postgresql():
    services = COMPOSE["services"]
    assert services["kafka"]["image"].startswith("apache/kafka")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["postgres"]["image"].startswith("postgres:")
    commands = {svc["command"][0] for svc in gateway_services().values()}
    assert commands == {"db", "serve", "relay", "dispatcher", "retention"}
    assert commands - {"db"} <= COMMANDS and "db" in COMMANDS


def test_compose_configures_only_settings_the_gateway_reads_and_no_secret_values():
    for name, svc in gateway_services().items():
        env = svc["environment"]
        assert set(env) <= SETTING_ENV, (name, set(env) - SETTING_ENV)
        assert not SECRETS & set(env), "secrets come from files, not from compose.yaml"
        assert env["BRB_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert {f"brb_{s[4:].lower()}" for s in SECRETS} <= set(svc["secrets"])


def test_compose_creates_the_topics_the_relay_publishes_to():
    created = re.findall(r"--topic (\S+)", COMPOSE["services"]["kafka-topics"]["command"][0])
    settings = Settings(kafka_topic_prefix=COMPOSE["services"]["gateway"]["environment"]["BRB_KAFKA_TOPIC_PREFIX"])
    assert sorted(created) == sorted([settings.events_topic, settings.audit_topic])


def containers(doc):
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"]


@pytest.mark.parametrize("doc", [d for d in K8S if d["kind"] in ("Deployment", "Job", "CronJob")], ids=lambda d: d["metadata"]["name"])
def test_k8s_workloads_run_known_commands_as_non_root_with_config_and_secrets(doc):
    for container in containers(doc):
        assert container["args"][0] in COMMANDS
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"brb-config", "brb-secrets"}
    pod = doc["spec"]["template"]["spec"] if doc["kind"] != "CronJob" else doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_k8s_config_and_secret_name_real_settings():
    config = next(d for d in K8S if d["kind"] == "ConfigMap")
    secret = next(d for d in K8S if d["kind"] == "Secret")
    assert set(config["data"]) <= SETTING_ENV
    assert set(secret["stringData"]) == SECRETS
    assert all(v.startswith("<") for v in secret["stringData"].values()), "the example holds no real secret"
    gateway = next(d for d in K8S if d["kind"] == "Deployment" and d["metadata"]["name"] == "brb-gateway")
    probes = containers(gateway)[0]
    assert probes["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_secrets_can_be_read_from_files(tmp_path, monkeypatch):
    (tmp_path / "brb_pseudonym_key").write_text("from-a-file")
    settings = Settings(_secrets_dir=tmp_path)
    assert settings.pseudonym_key.get_secret_value() == "from-a-file"
