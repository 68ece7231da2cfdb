"""deploy/k8s: every core object validated against the Kubernetes schemas (kubernetes-validate, strict, at a
fixed version), the Strimzi custom resources checked for what we rely on, and the manifests checked against
the code: probes on the app's paths and ports, settings it reads, secrets that exist, who may reach what."""
import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from gateway.cli import app as cli
from gateway.settings import Settings
from gateway.webhooks.dispatcher import group_for

K8S_VERSION = "1.31.0"  # the oldest Kubernetes minor still in upstream support when this was written
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
DOCS = [doc for f in sorted(DEPLOY.glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text()) if doc]
STRIMZI = "kafka.strimzi.io/v1beta2"
CORE = [d for d in DOCS if not d["apiVersion"].startswith("kafka.strimzi.io/")]
CRDS = [d for d in DOCS if d["apiVersion"].startswith("kafka.strimzi.io/")]
SETTING_ENV = {"BRB_" + name.upper() for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS", "BRB_SECRETS_DIR"}
COMMANDS = {c.name or c.callback.__name__ for c in cli.registered_commands} | {g.name for g in cli.registered_groups}
DATABASE_CLIENTS = {"brb-gateway", "brb-relay", "brb-dispatcher", "brb-retention"}
KAFKA_CLIENTS = {"brb-gateway", "brb-relay", "brb-dispatcher"}  # the gateway only for its readiness check


def ident(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


def of(kind: str) -> list[dict]:
    return [d for d in DOCS if d["kind"] == kind]


def one(kind: str, name: str) -> dict:
    (doc,) = [d for d in of(kind) if d["metadata"]["name"] == name]
    return doc


def pod(doc) -> dict:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]["spec"]


CONFIG = one("ConfigMap", "brb-config")["data"]
WORKLOADS = [d for d in DOCS if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")]
DEPLOYMENTS = of("Deployment")


# --- schema validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", CORE, ids=ident)
def test_core_objects_validate_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_field():
    broken = copy.deepcopy(one("Deployment", "brb-gateway"))
    pod(broken)["containers"][0]["readinesProbe"] = pod(broken)["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("doc", CRDS, ids=ident)
def test_strimzi_resources_have_what_the_operator_requires(doc):
    """Skipped by kubernetes-validate: it ships only the core Kubernetes schemas, not Strimzi's CRDs
    (no CRD schema can be fetched here). So the fields the Strimzi operators need are checked by hand."""
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert doc["apiVersion"] == STRIMZI and doc["metadata"]["namespace"] == "brb"
    cluster = one("Kafka", "brb-kafka")["metadata"]["name"]
    spec = doc["spec"]
    if doc["kind"] != "Kafka":
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    if doc["kind"] == "KafkaTopic":
        assert isinstance(spec["partitions"], int) and spec["replicas"] >= 3
        assert int(spec["config"]["min.insync.replicas"]) == spec["replicas"] - 1
    elif doc["kind"] == "KafkaUser":
        assert spec["authentication"] == {"type": "scram-sha-512"} and spec["authorization"]["type"] == "simple"
        for acl in spec["authorization"]["acls"]:
            assert acl["resource"]["type"] in {"topic", "group"} and acl["resource"]["patternType"] in {"literal", "prefix"}
            assert set(acl["operations"]) <= {"Read", "Write", "Describe", "Create"}
            assert isinstance(acl["resource"]["name"], str), "quote names YAML would read as a number (an OIN)"
    elif doc["kind"] == "KafkaNodePool":
        assert set(spec["roles"]) <= {"controller", "broker"} and spec["replicas"] >= 3 and spec["storage"]["type"]
    elif doc["kind"] == "Kafka":
        assert doc["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
        for listener in spec["kafka"]["listeners"]:
            assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}, listener["name"]
        assert spec["kafka"]["authorization"]["type"] == "simple"
        assert spec["kafka"]["config"]["auto.create.topics.enable"] is False
        assert set(spec["entityOperator"]) == {"topicOperator", "userOperator"}
    else:
        pytest.fail(f"unexpected Strimzi kind {doc['kind']}")


# --- Kafka: one principal per component and per organisation (contract 5) --------------------------------

def grants(user: str) -> set[tuple[str, str, str, str]]:
    acls = one("KafkaUser", user)["spec"]["authorization"]["acls"]
    return {(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], op) for a in acls for op in a["operations"]}


def test_each_component_and_each_organisation_has_its_own_principal_with_only_its_acls():
    prefix = CONFIG["BRB_KAFKA_TOPIC_PREFIX"]
    settings = Settings(kafka_topic_prefix=prefix)
    assert grants("brb-relay") == {
        *{("topic", t, "literal", op) for t in (settings.events_topic, settings.audit_topic) for op in ("Write", "Describe")},
        *{("topic", f"{prefix}.org.", "prefix", op) for op in ("Write", "Describe", "Create")},
    }
    assert grants("brb-dispatcher") == {("topic", settings.events_topic, "literal", "Read"),
                                        ("topic", settings.events_topic, "literal", "Describe"),
                                        ("group", group_for(prefix), "literal", "Read")}
    (org,) = [u["metadata"]["name"] for u in of("KafkaUser") if "brb/organisation" in u["metadata"]["labels"]]
    oin = one("KafkaUser", org)["metadata"]["labels"]["brb/organisation"]
    assert grants(org) == {("topic", f"{prefix}.org.{oin}", "literal", "Read"), ("topic", f"{prefix}.org.{oin}", "literal", "Describe"),
                           ("group", f"{oin}.", "prefix", "Read")}
    assert one("KafkaTopic", f"{prefix}.org.{oin}")["metadata"]["labels"]["brb/organisation"] == oin
    topics = {t["metadata"]["name"] for t in of("KafkaTopic")}
    assert {settings.events_topic, settings.audit_topic} <= topics
    for name in ("brb-relay", "brb-dispatcher"):  # each Kafka client logs in as its own KafkaUser
        env = {e["name"]: e["value"] for e in pod(one("Deployment", name))["containers"][0]["env"]}
        assert env["BRB_KAFKA_SASL_USERNAME"] == name


# --- workloads: probes, resources, security, settings, secrets --------------------------------------------

def containers(doc, init: bool = True):
    return pod(doc)["containers"] + (pod(doc).get("initContainers", []) if init else [])


def port_number(container, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


@pytest.mark.parametrize("doc", DEPLOYMENTS, ids=ident)
def test_every_process_has_probes_on_the_apps_health_paths_and_ports(doc):
    (container,) = pod(doc)["containers"]
    command = container["args"][0]
    expected = 8000 if command == "serve" else int(CONFIG["BRB_HEALTH_PORT"])
    if command == "serve":
        assert container["args"][container["args"].index("--port") + 1] == str(expected)
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready"), ("startupProbe", "/health/live")):
        get = container[probe]["httpGet"]
        assert (get["path"], port_number(container, get["port"])) == (path, expected), (probe, get)


@pytest.mark.parametrize("doc", WORKLOADS, ids=ident)
def test_every_container_has_resources_and_runs_non_root_on_a_read_only_root(doc):
    assert pod(doc)["securityContext"]["runAsNonRoot"] is True and pod(doc)["securityContext"]["runAsUser"] != 0
    assert pod(doc)["automountServiceAccountToken"] is False
    for container in containers(doc):
        assert container["args"][0] in COMMANDS
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (container["name"], kind)
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]


def test_the_migration_runs_as_the_gateways_init_container_before_it_serves():
    gateway = one("Deployment", "brb-gateway")
    (init,) = pod(gateway)["initContainers"]
    assert init["args"] == ["db", "upgrade"] and init["image"] == pod(gateway)["containers"][0]["image"]
    assert not of("Job"), "no separate migration Job to race the gateway"


def test_config_names_only_real_settings_and_no_secrets():
    assert set(CONFIG) <= SETTING_ENV, set(CONFIG) - SETTING_ENV
    assert "@" in CONFIG["BRB_DATABASE_URL"] and ":" not in CONFIG["BRB_DATABASE_URL"].split("://")[1].split("@")[0]
    for doc in WORKLOADS:
        for container in containers(doc):
            assert set(env["name"] for env in container.get("env", [])) <= SETTING_ENV
            assert {next(iter(r.values()))["name"] for r in container["envFrom"]} == {"brb-config"}


def example_secrets() -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: s["stringData"] for s in of("Secret")}


def mounted_files(doc, container) -> dict[str, str]:
    """The files the container sees in /run/secrets, with the example values."""
    secrets = example_secrets()
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == CONFIG["BRB_SECRETS_DIR"]]
    (volume,) = [v for v in pod(doc)["volumes"] if v["name"] == mount["name"]]
    files = {}
    for source in volume["projected"]["sources"]:
        ref = source["secret"]
        assert ref["name"] in secrets, f"{ident(doc)} mounts the Secret {ref['name']}, which secrets.example.yaml lacks"
        items = ref.get("items") or [{"key": k, "path": k} for k in secrets[ref["name"]]]
        for item in items:
            assert item["key"] in secrets[ref["name"]], (ref["name"], item["key"])
            files[item["path"]] = secrets[ref["name"]][item["key"]]
    for container_env in container.get("env", []):
        if "valueFrom" in container_env:
            ref = container_env["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets.get(ref["name"], {}), ref
    return files


@pytest.mark.parametrize("doc", WORKLOADS, ids=ident)
def test_every_secret_a_process_needs_is_mounted_from_a_secret_that_exists(doc, tmp_path):
    for container in containers(doc):
        files = mounted_files(doc, container)
        folder = tmp_path / container["name"]
        folder.mkdir()
        for path, value in files.items():
            (folder / path).write_text(value)
        env = {**CONFIG, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
        kwargs = {("kafka_bootstrap_servers" if k == "KAFKA_BOOTSTRAP_SERVERS" else k.removeprefix("BRB_").lower()): v
                  for k, v in env.items() if k != "BRB_SECRETS_DIR"}
        settings = Settings(_secrets_dir=folder, **kwargs)
        settings.require_secrets()
        assert make_url(settings.database_url).password == files["brb_database_password"]  # put into the URL
        assert Path(settings.encryption_keys_file).name in files, "the key ring file is in the mounted Secret"
        if doc["metadata"]["name"] in KAFKA_CLIENTS - {"brb-gateway"}:
            assert settings.kafka_sasl_password is not None and Path(settings.kafka_ssl_cafile).name in files


def test_example_secrets_hold_no_real_values():
    for name, data in example_secrets().items():
        assert all(v.startswith("<") or v.startswith('{"keys": {"<') for v in data.values()), name


# --- traffic: TLS in, no plain 443, who may reach whom ------------------------------------------------------

def test_tls_ends_at_the_ingress_with_a_cert_manager_certificate_and_no_service_maps_443_to_http():
    ingress = one("Ingress", "brb-gateway")
    assert "cert-manager.io/cluster-issuer" in ingress["metadata"]["annotations"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] and set(tls["hosts"]) == {r["host"] for r in ingress["spec"]["rules"]}
    for service in of("Service"):
        for port in service["spec"]["ports"]:
            assert not (port["port"] == 443 and port["targetPort"] in ("http", 8000)), service["metadata"]["name"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = one("Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def policies_for(app: str) -> list[dict]:
    return [p for p in of("NetworkPolicy") if p["spec"]["podSelector"].get("matchLabels", {}).get("app") == app]


def egress_to(app: str, port: int) -> bool:
    return any(port in [p["port"] for p in rule.get("ports", [])] for pol in policies_for(app) for rule in pol["spec"].get("egress", []))


def test_network_policies_deny_by_default_and_open_only_the_paths_each_process_needs():
    (deny,) = [p for p in of("NetworkPolicy") if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] and "egress" not in p["spec"]]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    apps = {d["metadata"]["labels"]["app"] for d in DEPLOYMENTS}
    assert {a for a in apps if egress_to(a, 5432)} == DATABASE_CLIENTS
    assert {a for a in apps if egress_to(a, 9093)} == KAFKA_CLIENTS
    assert {a for a in apps if egress_to(a, 443)} == {"brb-dispatcher"}  # webhooks
    (postgres,) = policies_for("brb-postgres")
    (rule,) = postgres["spec"]["ingress"]
    assert {peer["podSelector"]["matchLabels"]["app"] for peer in rule["from"]} == DATABASE_CLIENTS
    peers = next(lst for lst in one("Kafka", "brb-kafka")["spec"]["kafka"]["listeners"] if lst["type"] == "internal")
    assert {p["podSelector"]["matchLabels"]["app"] for p in peers["networkPolicyPeers"]} == KAFKA_CLIENTS
    for app in apps:
        assert policies_for(app), f"{app} has no NetworkPolicy of its own"


def test_disruption_budgets_and_the_gateways_autoscaler():
    budgets = {p["spec"]["selector"]["matchLabels"]["app"]: p["spec"] for p in of("PodDisruptionBudget")}
    for doc in DEPLOYMENTS:
        app = doc["metadata"]["labels"]["app"]
        if doc["spec"]["replicas"] > 1:
            assert app in budgets, app
            budget = budgets[app]  # a node drain can always proceed, and never takes all replicas at once
            assert budget.get("maxUnavailable", 0) >= 1 or budget["minAvailable"] < doc["spec"]["replicas"]
    (hpa,) = of("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "brb-gateway"}
    assert hpa["spec"]["minReplicas"] >= budgets["brb-gateway"]["minAvailable"] + 1
    assert one("Deployment", "brb-retention")["spec"]["replicas"] == 1  # one retention loop, ever


def test_the_image_runs_as_the_user_the_pods_require_and_installs_the_client_from_the_checkout():
    dockerfile = (DEPLOY.parent / "Dockerfile").read_text()
    user = int(dockerfile.split("\nUSER ")[1].split()[0])
    assert {pod(d)["securityContext"]["runAsUser"] for d in WORKLOADS} == {user}
    assert "./adapters/brb-client" in dockerfile  # brb-client is no registry package
    exposed = {int(p) for p in dockerfile.split("\nEXPOSE ")[1].split("\n")[0].split()}
    assert exposed == {8000, int(CONFIG["BRB_HEALTH_PORT"])}
