"""deploy/compose.yaml is written for production; no Docker engine runs here, so these tests validate it
(a Compose-spec parser and the Compose-spec JSON schema), run deploy/generate-secrets.sh and check that every
file compose mounts is generated, and build each process's settings the way the container would see them."""
import copy
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from brb_client.receipts import verify_receipt
from compose_spec import PyCompose

from gateway.cli import app as cli
from gateway.crypto import ring_from_settings
from gateway.receipts import ReceiptSigner
from gateway.settings import Settings
from gateway.webhooks.dispatcher import group_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # YAML merge keys resolved
# the Compose-spec JSON schema as shipped by docker-compose 1.29.2 (compose/config/compose_spec.json, Apache-2.0)
SCHEMA = json.loads((Path(__file__).with_name("schemas") / "compose-spec.json").read_text())
SETTING_ENV = {"BRB_" + name.upper() for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS", "BRB_SECRETS_DIR"}
COMMANDS = {c.name or c.callback.__name__ for c in cli.registered_commands} | {g.name for g in cli.registered_groups}
SECRET_SETTINGS = {"pseudonym_key", "audit_chain_key", "receipt_signing_key", "database_password"}  # files in BRB_SECRETS_DIR
KAFKA_CLIENTS = {"relay", "dispatcher"}
WORKERS = {"relay", "dispatcher", "retention"}


def gateway_services():
    return {name: svc for name, svc in COMPOSE["services"].items() if str(svc.get("image", "")).startswith("berichtenbox")}


def kafka_env():
    return COMPOSE["services"]["kafka"]["environment"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """deploy/generate-secrets.sh run for real (openssl), with one organisation."""
    out = tmp_path_factory.mktemp("deploy") / "secrets"
    subprocess.run(["bash", str(DEPLOY / "generate-secrets.sh"), str(out), "00000001234567890000"], check=True,
                   capture_output=True)
    return out


def on_host(generated: Path, compose_path: str) -> Path:
    """A ./secrets/... path of compose.yaml, in the generated folder."""
    assert compose_path.startswith("./secrets/"), compose_path
    return generated / compose_path.removeprefix("./secrets/")


# --- the file is valid Compose ----------------------------------------------------------------------

def test_compose_is_accepted_by_a_compose_spec_parser_that_rejects_a_wrong_key():
    PyCompose.from_json(json.dumps(COMPOSE)).to_spec()
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    with pytest.raises(ValueError, match="intervall"):
        PyCompose.from_json(json.dumps(broken)).to_spec()


def test_compose_validates_against_the_compose_spec_json_schema():
    # the vendored schema predates the top-level `name` (project name); the parser above checks that key
    doc = {k: v for k, v in COMPOSE.items() if k != "name"}
    jsonschema.Draft201909Validator(SCHEMA).validate(doc)
    doc["services"]["relay"]["deploy"] = {"replicas": "two"}
    assert not jsonschema.Draft201909Validator(SCHEMA).is_valid(doc)


# --- what it runs and configures ---------------------------------------------------------------------

def test_compose_runs_every_process_of_the_gateway_on_kafka_kraft_and_postgresql():
    services = COMPOSE["services"]
    assert services["kafka"]["image"].startswith("apache/kafka")
    assert kafka_env()["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["postgres"]["image"].startswith("postgres:")
    commands = {svc["command"][0] for svc in gateway_services().values()}
    assert commands == {"db", "serve", "relay", "dispatcher", "retention"}
    assert commands <= COMMANDS


def test_compose_configures_only_settings_the_gateway_reads_and_no_secret_values():
    for name, svc in gateway_services().items():
        env = svc["environment"]
        assert set(env) <= SETTING_ENV, (name, set(env) - SETTING_ENV)
        assert not {"BRB_" + s.upper() for s in SECRET_SETTINGS | {"encryption_keys", "kafka_sasl_password"}} & set(env)
        assert env["BRB_DATABASE_URL"].startswith("postgresql+asyncpg://") and ":" not in env["BRB_DATABASE_URL"].split("@")[0][22:]


def test_only_the_tls_proxy_is_published_and_it_serves_the_certificate_from_secrets():
    services = COMPOSE["services"]
    assert [n for n, s in services.items() if s.get("ports")] == ["proxy"]
    assert services["proxy"]["ports"] == ["443:8443"]
    config = (DEPLOY / COMPOSE["configs"]["caddyfile"]["file"]).read_text()
    assert "https://:8443" in config and "reverse_proxy gateway:8000" in config
    for secret in ("tls_cert", "tls_key"):
        assert f"/run/secrets/{secret}" in config and secret in services["proxy"]["secrets"]
    assert COMPOSE["networks"]["backend"]["internal"] is True  # nothing else has a route in or out
    assert {n for n, s in services.items() if "egress" in s.get("networks", [])} == {"dispatcher"}


def test_kafka_listens_on_the_network_only_with_sasl_ssl_and_acls_on():
    env = kafka_env()
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for name, address in listeners.items():
        assert protocols[name] == "SASL_SSL" or address.startswith("localhost:"), name
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false" and "StandardAuthorizer" in env["KAFKA_AUTHORIZER_CLASS_NAME"]
    for svc in gateway_services().values():
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9094"


def test_every_process_has_a_healthcheck_on_its_own_health_port_and_paths():
    for name, svc in gateway_services().items():
        if svc["command"][0] == "db":
            continue
        port = 8000 if svc["command"][0] == "serve" else int(svc["environment"]["BRB_HEALTH_PORT"])
        assert f"http://127.0.0.1:{port}/health/ready" in " ".join(svc["healthcheck"]["test"]), name
    assert {n for n in gateway_services() if n in WORKERS} == WORKERS


def test_compose_creates_the_topics_and_grants_each_principal_only_its_part():
    script = COMPOSE["services"]["kafka-init"]["command"][0]
    created = re.findall(r"--topic (\S+) --partitions", script)
    settings = Settings(kafka_topic_prefix=COMPOSE["services"]["gateway"]["environment"]["BRB_KAFKA_TOPIC_PREFIX"])
    assert set(created) == {settings.events_topic, settings.audit_topic, "brb.org.$$oin"}
    acls = re.findall(r"--allow-principal User:(\S+) (.*?);", script)
    grants = {}
    for principal, rest in acls:
        grants.setdefault(principal, []).append(rest)
    relay = " ".join(grants["brb_relay"])
    assert "--operation Write" in relay and "Read" not in relay and "--resource-pattern-type prefixed --topic brb.org." in relay
    dispatcher = " ".join(grants["brb_dispatcher"])
    assert "Write" not in dispatcher and f"--group {group_for(settings.kafka_topic_prefix)}" in dispatcher
    org = " ".join(grants["org_$$oin"])
    assert "--topic brb.org.$$oin" in org and "brb.events" not in org and "--group $$oin." in org and "Write" not in org
    for service in KAFKA_CLIENTS:  # each client authenticates as the principal the ACLs name
        assert gateway_services()[service]["environment"]["BRB_KAFKA_SASL_USERNAME"] in grants


# --- the generated secrets ---------------------------------------------------------------------------

def test_generate_secrets_writes_every_file_compose_references(generated):
    for name, secret in COMPOSE["secrets"].items():
        assert on_host(generated, secret["file"]).is_file(), name
    for svc in COMPOSE["services"].values():
        for volume in svc.get("volumes", []):
            if volume.startswith("./secrets/"):
                assert on_host(generated, volume.split(":")[0]).is_dir(), volume
    kafka = generated / "kafka"  # mounted at /etc/kafka/secrets
    env = kafka_env()
    for key in ("KAFKA_SSL_KEYSTORE_FILENAME", "KAFKA_SSL_KEYSTORE_CREDENTIALS", "KAFKA_SSL_KEY_CREDENTIALS",
                "KAFKA_SSL_TRUSTSTORE_FILENAME", "KAFKA_SSL_TRUSTSTORE_CREDENTIALS"):
        assert (kafka / env[key]).is_file(), key
    jaas = re.search(r"auth\.login\.config=/etc/kafka/secrets/(\S+)", env["KAFKA_OPTS"]).group(1)
    assert (kafka / jaas).is_file()
    for path in re.findall(r"/etc/kafka/secrets/([\w.-]+)", COMPOSE["services"]["kafka-init"]["command"][0]):
        assert (kafka / path).is_file(), path
    assert (kafka / "org-oins").read_text().split() == ["00000001234567890000"]


def test_generated_certificates_chain_to_the_local_ca_and_name_their_hosts(generated):
    tls = generated / "tls"
    for name, host in (("gateway", "DNS:localhost"), ("kafka", "DNS:kafka")):
        subprocess.run(["openssl", "verify", "-CAfile", tls / "ca.crt", tls / f"{name}.crt"], check=True, capture_output=True)
        text = subprocess.run(["openssl", "x509", "-in", tls / f"{name}.crt", "-noout", "-text"], check=True,
                              capture_output=True, text=True).stdout
        assert host in text and "TLS Web Server Authentication" in text
    password = (generated / "kafka" / "keystore_creds").read_text().strip()
    listing = subprocess.run(["openssl", "pkcs12", "-in", generated / "kafka" / "kafka.keystore.p12", "-nodes",
                              "-passin", f"pass:{password}"], check=True, capture_output=True, text=True).stdout
    assert "PRIVATE KEY" in listing and "CN = kafka" in listing.replace("CN=kafka", "CN = kafka")


def test_the_kafka_users_are_the_principals_the_processes_log_in_as(generated):
    jaas = (generated / "kafka" / "kafka_server_jaas.conf").read_text()
    users = dict(re.findall(r'user_(\w+)="(\w+)"', jaas))
    assert set(users) == {"admin", "brb_relay", "brb_dispatcher", "org_00000001234567890000"}
    assert len(set(users.values())) == len(users), "every principal has its own password"
    for service in KAFKA_CLIENTS:
        svc = gateway_services()[service]
        username = svc["environment"]["BRB_KAFKA_SASL_USERNAME"]
        (source,) = [s["source"] for s in svc["secrets"] if isinstance(s, dict) and s["target"] == "brb_kafka_sasl_password"]
        assert on_host(generated, COMPOSE["secrets"][source]["file"]).read_text().strip() == users[username]
    admin = (generated / "kafka" / "admin.properties").read_text()
    assert "security.protocol=SASL_SSL" in admin and f'password="{users["admin"]}"' in admin


def container_settings(generated: Path, svc: dict, mounted: Path) -> Settings:
    """The settings a container of ``svc`` reads: its environment, its secrets as /run/secrets files
    (copied to ``mounted``), its bind-mounted key ring."""
    mounted.mkdir()
    for entry in svc["secrets"]:
        source, target = (entry, entry) if isinstance(entry, str) else (entry["source"], entry["target"])
        (mounted / target).write_bytes(on_host(generated, COMPOSE["secrets"][source]["file"]).read_bytes())
    env = dict(svc["environment"])
    for volume in svc.get("volumes", []):
        host, _, inside = volume.partition(":")
        inside = inside.removesuffix(":ro")
        if host.startswith("./secrets/"):
            for key, value in env.items():
                if isinstance(value, str) and value.startswith(inside + "/"):
                    env[key] = str(on_host(generated, host) / value.removeprefix(inside + "/"))
    for key, value in env.items():
        if isinstance(value, str) and value.startswith("/run/secrets/"):
            env[key] = str(mounted / value.removeprefix("/run/secrets/"))
    kwargs = {("kafka_bootstrap_servers" if k == "KAFKA_BOOTSTRAP_SERVERS" else k.removeprefix("BRB_").lower()): v
              for k, v in env.items() if k not in ("BRB_SECRETS_DIR",)}
    return Settings(_secrets_dir=mounted, **kwargs)


@pytest.mark.parametrize("service", sorted(gateway_services()))
def test_every_process_starts_with_all_required_settings_from_the_generated_files(generated, service, tmp_path):
    svc = gateway_services()[service]
    settings = container_settings(generated, svc, tmp_path / "run-secrets")
    settings.require_secrets()
    for name in SECRET_SETTINGS:
        assert getattr(settings, name) is not None, name
    assert ring_from_settings(settings).current_id  # the key ring file opens
    signer = ReceiptSigner.from_settings(settings)  # the JWK the script cut from openssl's key: d fits x and y
    assert verify_receipt(signer.sign({"receipt": "test"}), signer.jwks())["receipt"] == "test"
    password = (generated / "brb_database_password").read_text().strip()
    assert f":{password}@postgres:5432/" in settings.database_url  # the URL got its password from the file
    postgres = COMPOSE["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/brb_database_password"
    if service in KAFKA_CLIENTS:
        options = settings.kafka_options()  # builds the TLS context from the generated CA
        assert options["security_protocol"] == "SASL_SSL" and options["sasl_plain_username"].startswith("brb_")
        assert options["sasl_plain_password"] and options["ssl_context"] is not None


def test_generate_secrets_never_overwrites(generated):
    before = (generated / "brb_pseudonym_key").read_text()
    run = subprocess.run(["bash", str(DEPLOY / "generate-secrets.sh"), str(generated)], capture_output=True, text=True)
    assert run.returncode != 0 and "already holds secrets" in run.stderr
    assert (generated / "brb_pseudonym_key").read_text() == before


def test_secrets_can_be_read_from_files(tmp_path):
    (tmp_path / "brb_pseudonym_key").write_text("from-a-file")
    (tmp_path / "brb_database_password").write_text("s3cret")
    settings = Settings(_secrets_dir=tmp_path, database_url="postgresql+asyncpg://brb@db:5432/brb")
    assert settings.pseudonym_key.get_secret_value() == "from-a-file"
    assert settings.database_url == "postgresql+asyncpg://brb:s3cret@db:5432/brb"
    explicit = Settings(_secrets_dir=tmp_path, database_url="postgresql+asyncpg://brb:other@db:5432/brb")
    assert explicit.database_url.endswith("brb:other@db:5432/brb")  # a URL with its own password keeps it
