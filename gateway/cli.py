"""The ``brb`` command: database, registry, tokens, the processes, and the one-command demo."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from sqlalchemy import make_url

from brb_client.verify import app as verify_app

app = typer.Typer(help="Berichtenbox Re-integratie gateway", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
org_app = typer.Typer(help="Organisation registry", no_args_is_help=True)
key_app = typer.Typer(help="Organisation keys and the payload key ring", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")
app.add_typer(key_app, name="key")
app.add_typer(verify_app, name="verify")  # a received message's signature, a gateway receipt (brb_client/verify.py)


@app.callback()
def _logging() -> None:
    """Every command logs JSON lines on stderr (README, 'Logs'); its output stays on stdout."""
    from gateway.logs import configure_logging
    from gateway.settings import Settings

    configure_logging(Settings().log_level)


def _demo_secrets_if_any() -> None:
    """In a demo checkout (``make run`` left .var/demo-secrets.json here), use the demo's secrets for what
    the environment does not set, so ``brb key rewrap`` and friends work on the demo's database (a secret
    added since the demo was made, such as the receipt key, is generated into the file first)."""
    from gateway.demo import SECRETS, kept_secrets

    if SECRETS.exists():
        try:
            values = kept_secrets()
        except (OSError, ValueError) as exc:
            typer.echo(f"cannot read the demo's secrets in {SECRETS}: {exc}", err=True)
            raise typer.Exit(2) from None
        for name, value in values.items():
            os.environ.setdefault(name, value)


def _services():
    from gateway.services import Services
    from gateway.settings import Settings

    _demo_secrets_if_any()
    try:
        return Services.from_settings(Settings())
    except (RuntimeError, OSError, ValueError) as exc:  # missing secrets, an unreadable key file: say so, no traceback
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from None


def _with_services(work):
    """Run ``await work(services)`` with services built from the environment, and close them."""

    async def go():
        svc = _services()
        try:
            return await work(svc)
        finally:
            await svc.db.dispose()

    return asyncio.run(go())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to BRB_DATABASE_URL."""
    from gateway.db.migrate import upgrade
    from gateway.settings import Settings

    settings = Settings()
    upgrade(settings.database_url, settings.database_schema)
    typer.echo("database at head")


@org_app.command("add")
def org_add(oin: str, name: str, kind: str, cbs_code: Annotated[Optional[str], typer.Option("--cbs")] = None,
            parent_oin: Annotated[Optional[str], typer.Option("--parent")] = None) -> None:
    """Register an organisation."""
    from gateway import registry

    org = _with_services(lambda svc: registry.add_organisation(svc, registry.OrganisationRequest(
        oin=oin, name=name, kind=kind, cbs_code=cbs_code, parent_oin=parent_oin)))
    typer.echo(org.model_dump_json(by_alias=True))


@org_app.command("list")
def org_list() -> None:
    """List organisations and their keys."""
    from gateway import registry

    for org in _with_services(registry.list_organisations).items:
        keys = ", ".join(f"{k.kid}{' (revoked)' if k.revoked_at else ''}" for k in org.keys)
        typer.echo(f"{org.oin}  {org.kind:<13} {org.cbs_code or '    '}  {org.name}  [{keys}]")


@key_app.command("add")
def key_add(oin: str, jwk_file: Path) -> None:
    """Register a public JWK for an organisation."""
    from gateway import registry

    key = _with_services(lambda svc: registry.add_key(svc, oin, json.loads(jwk_file.read_text())))
    typer.echo(key.model_dump_json(by_alias=True))


@key_app.command("revoke")
def key_revoke(oin: str, kid: str) -> None:
    """Revoke a key: tokens signed with it are refused from now on."""
    from gateway import registry

    typer.echo(_with_services(lambda svc: registry.revoke_key(svc, oin, kid)).model_dump_json(by_alias=True))


def _key_command(work):
    """Run a key-ring command; a refusal is a clear message and exit code 1, never a traceback."""
    from gateway.keyrotation import Refused

    try:
        return _with_services(work)
    except Refused as exc:
        typer.echo(f"refused: {exc.reason}", err=True)
        raise typer.Exit(1) from None


@key_app.command("new")
def key_new(kid: str, file: Annotated[Optional[Path], typer.Option(
        help="add it to this key file (default BRB_ENCRYPTION_KEYS_FILE); without one, print the entry")] = None) -> None:
    """Step 1 of a rotation: a new random payload ring key, added to the key file (it does NOT seal yet:
    `brb key promote` decides that once every process holds it)."""
    import base64
    import secrets as random

    from gateway.crypto import read_key_file, write_key_file
    from gateway.settings import Settings

    target = file or (Path(Settings().encryption_keys_file) if Settings().encryption_keys_file else None)
    key = random.token_bytes(32)
    if target is None:
        typer.echo(f"{kid}:{base64.b64encode(key).decode()}")
        return
    keys, current = read_key_file(target) if target.exists() else ({}, None)
    if kid in keys:
        typer.echo(f"refused: {target} already has a key {kid!r}", err=True)
        raise typer.Exit(1)
    write_key_file(target, {**keys, kid: key}, current or kid)
    typer.echo(f"key {kid!r} added to {target}; every process picks it up within BRB_KEY_RELOAD_SECONDS (or on SIGHUP)")


@key_app.command("status")
def key_status() -> None:
    """The fleet's ring: the sealing key, retired keys, every live process and what it holds, and how many
    sealed values are wrapped under each key."""
    from gateway import keyrotation

    async def work(svc):
        return (await keyrotation.ring_state(svc), await keyrotation.live_holders(svc), await keyrotation.wrapped_counts(svc))

    state, holders, counts = _key_command(work)
    typer.echo(f"sealing key: {state.current_id}   retired: {', '.join(state.retired) or '-'}")
    typer.echo("wrapped under: " + (", ".join(f"{k}={n}" for k, n in sorted(counts.items())) or "-"))
    for h in holders:
        typer.echo(f"  {h.process_id:<40} {h.role:<11} seals {h.current_id:<12} holds {', '.join(h.held)}  seen {h.seen_at:%H:%M:%S}")
    if not holders:
        typer.echo("  (no live process recorded its keys)")


@key_app.command("promote")
def key_promote(kid: str) -> None:
    """Step 2a: seal new data with KID everywhere. Refused unless every live process holds KID."""
    from gateway.keyrotation import promote

    state = _key_command(lambda svc: promote(svc, kid))
    typer.echo(f"key {state.current_id!r} seals from now on (every process follows within BRB_KEY_HEARTBEAT_SECONDS); "
               "then run `brb key rewrap`")


@key_app.command("rewrap")
def key_rewrap() -> None:
    """Step 2b: re-wrap every sealed value's data key (payloads, webhook secrets, acknowledgement and withdrawal
    reasons) under the sealing key. Refused until every live process seals with it."""
    from gateway.keyrotation import rewrap_all

    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("re-wrapping data keys: {task.completed} done")) as progress:
        task = progress.add_task("rewrap", total=None)
        done = _key_command(lambda svc: rewrap_all(svc, progress=lambda n: progress.advance(task, n)))
    typer.echo(f"re-wrapped {done} item(s) under the sealing key")


@key_app.command("retire")
def key_retire(kid: str) -> None:
    """Step 3: retire KID. Refused while it still seals anywhere or anything is still wrapped under it; then
    remove it from every key file."""
    from gateway.keyrotation import retire

    _key_command(lambda svc: retire(svc, kid))
    typer.echo(f"key {kid!r} retired: nothing is wrapped under it any more; remove it from every key file now")


@app.command()
def token(oin: str, scope: Annotated[Optional[str], typer.Option(help="space-separated scopes")] = None,
          lifetime: int = 300) -> None:
    """Mint a token for a demo organisation from its key in .var/demo-keys (development only)."""
    from gateway.auth.mint import mint
    from contracts.parties import KINDS
    from gateway.demo import DEMO_ORGANISATIONS, key_file
    from gateway.settings import Settings

    path = key_file(oin)
    if not path.exists():
        typer.echo(f"no demo key for {oin} in {path.parent}; run `make run` first", err=True)
        raise typer.Exit(2)
    kind = next((o["kind"] for o in DEMO_ORGANISATIONS if o["oin"] == oin), "dji")
    typer.echo(mint(json.loads(path.read_text()), oin, Settings().audience, scope or KINDS[kind].default_scope, lifetime))


@app.command()
def sign(oin: str, body: Annotated[str, typer.Argument(help="a send request body (JSON) file; - reads standard input")] = "-") -> None:
    """Sign a send request with a demo organisation's key from .var/demo-keys (development only): prints the
    body with its payload in the contract's normal form and its ``signature`` (docs/signatures.md)."""
    from brb_client.proof import sign_payload
    from contracts import ContractError, validate_payload
    from contracts.registry import UnknownContract, section_pointers
    from gateway.demo import key_file

    path = key_file(oin)
    if not path.exists():
        typer.echo(f"no demo key for {oin} in {path.parent}; run `make run` first", err=True)
        raise typer.Exit(2)
    try:
        request = json.loads(sys.stdin.read() if body == "-" else Path(body).read_text())
        contract = validate_payload(request["type"], request.get("version", 1), request["payload"])
    except (OSError, ValueError, KeyError, TypeError, ContractError, UnknownContract) as exc:
        typer.echo(f"not a send request body with a valid payload: {exc}", err=True)
        raise typer.Exit(2) from None
    request["payload"] = contract.model_dump(mode="json", by_alias=True, exclude_none=True)
    pointers = section_pointers(request["type"], request.get("version", 1))
    request["signature"] = sign_payload(request["payload"], pointers, json.loads(path.read_text())).as_request()
    typer.echo(json.dumps(request, ensure_ascii=False))


@app.command()
def openapi() -> None:
    """Print the OpenAPI document as YAML (the committed openapi.yaml is this output)."""
    from gateway.openapi import build, to_yaml
    from gateway.app import create_app

    typer.echo(to_yaml(build(create_app())), nl=False)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          workers: Annotated[int, typer.Option(min=1, help="gateway processes sharing the port (uvicorn workers); "
                                                          "PostgreSQL for more than one")] = 1) -> None:
    """Run the gateway (uvicorn). Each worker process builds its own app from the environment."""
    import uvicorn

    # our JSON lines for uvicorn's loggers too; its access log (raw paths) gives way to our `http.request`
    uvicorn.run("gateway.app:create_app", factory=True, workers=workers, host=host, port=port, log_level="info",
                proxy_headers=True, log_config=None, access_log=False)


@app.command()
def relay() -> None:
    """Run the outbox relay (several may run); /health/* and /metrics on BRB_HEALTH_PORT."""
    _run_worker("relay")


@app.command()
def dispatcher() -> None:
    """Run the webhook dispatcher (a Kafka consumer group); /health/* and /metrics on BRB_HEALTH_PORT."""
    _run_worker("dispatcher")


@app.command()
def retention(once: bool = typer.Option(False, help="purge what is due and exit")) -> None:
    """Purge payloads whose retention has passed and prune confirmed outbox rows, expired jtis and officer sessions
    ended 30 days ago (loops every BRB_RETENTION_INTERVAL_SECONDS; /health/* and /metrics on BRB_HEALTH_PORT)."""
    from gateway.workers import retention_round

    if once:
        purged, pruned = _with_services(retention_round)
        typer.echo(f"purged {purged} cop(ies); pruned {pruned} confirmed outbox row(s) and expired jti(s) and old officer session(s)")
        return
    _run_worker("retention")


@app.command()
def deadlines() -> None:
    """Mark every deadline whose day passed unmet as overdue (deadline.overdue events) and evaluate again the SOM
    triages whose day came (triage.changed events), once, and exit (for a CronJob; the retention worker runs both
    every BRB_DEADLINE_INTERVAL_SECONDS)."""
    from gateway.trajectory.monitor import deadline_round
    from gateway.triage.review import triage_round

    typer.echo(f"{_with_services(deadline_round)} deadline(s) found overdue")
    typer.echo(f"{_with_services(triage_round)} triage outcome(s) changed by time")


audit_app = typer.Typer(help="The audit log", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the audit chain's head to BRB_AUDIT_CHECKPOINT_FILE and the audit topic
    (for a CronJob; the retention loop also writes them every BRB_AUDIT_CHECKPOINT_INTERVAL_SECONDS)."""
    from gateway.audit.checkpoint import CheckpointRefused, write_checkpoint
    from gateway.settings import Settings

    if not Settings().audit_checkpoint_file:
        typer.echo("BRB_AUDIT_CHECKPOINT_FILE is not set", err=True)
        raise typer.Exit(2)
    try:
        cp = _with_services(write_checkpoint)
    except CheckpointRefused as exc:
        typer.echo(f"checkpoint refused: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"checkpoint: record {cp.seq} at {cp.recorded_at}" if cp else "no new checkpoint: the chain head has not moved")


sessions_app = typer.Typer(help="The audit pages' officer sessions", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list() -> None:
    """The live sessions of the audit pages: officer, organisation, since when, last use (never a session id)."""
    from gateway.pages.officer import open_sessions

    rows = _with_services(open_sessions)
    for r in rows:
        typer.echo(f"{r.officer_sub:<36} {r.officer_oin}  since {r.created_at:%Y-%m-%d %H:%M}Z  "
                   f"last seen {r.last_seen_at:%Y-%m-%d %H:%M}Z")
    if not rows:
        typer.echo("(no live sessions)")


@sessions_app.command("end")
def sessions_end(officer: Annotated[Optional[str], typer.Option(help="the officer's sub (see `brb sessions list`)")] = None,
                 organisation: Annotated[Optional[str], typer.Option(help="every officer of this organisation (OIN)")] = None,
                 every: Annotated[bool, typer.Option("--all", help="every session (an incident)")] = False) -> None:
    """End live sessions of the audit pages now (an incident): their cookies lead to the login from the next request."""
    from gateway.pages.officer import end_sessions

    try:
        ended = _with_services(lambda svc: end_sessions(svc, sub=officer, oin=organisation, every=every))
    except ValueError:  # end_sessions takes exactly one selector
        typer.echo("give exactly one of --officer, --organisation, --all", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"ended {ended} session(s)")


def _run_worker(name: str) -> None:
    """Run a long-lived worker (relay, dispatcher, retention), supervised (restarted after a crash), with its
    health server on BRB_HEALTH_PORT (readiness: database, broker for relay and dispatcher, the worker not
    stuck), until SIGINT/SIGTERM, then let it finish its round and stop."""
    from gateway.worker_health import serving
    from gateway.workers import register, run_worker, supervise

    async def work(svc):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        from gateway.keyrotation import KeyKeeper

        keeper = await KeyKeeper(svc, name).start(stop)  # key file reloads, sealing key, key_holders heartbeat
        try:
            health = register(svc, name)
            async with serving(svc, broker=name != "retention"):
                await supervise(name, run_worker(svc, name), stop, backoff_max=svc.settings.broker_backoff_max_seconds,
                                health=health)
        finally:
            stop.set()
            await keeper

    _with_services(work)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000,
         kafka_port: Annotated[int, typer.Option(help="port of the loopback broker")] = 9092) -> None:
    """Everything on the embedded defaults: SQLite under .var/, a loopback broker, demo organisations
    and keys, and the gateway with relay, dispatcher and retention on http://127.0.0.1:8000."""
    import uvicorn

    from gateway.broker import LoopbackBroker, free_port, port_open
    from gateway.demo import demo_secrets

    # SIGTERM as an exception, so `finally` stops the broker (left alone, it killed this process and
    # orphaned the broker). uvicorn shuts down on a SIGTERM, then raises it again for this handler.
    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    os.environ.update(demo_secrets())
    os.environ.setdefault("BRB_RUN_WORKERS", "true")
    os.environ.setdefault("BRB_ALLOW_INSECURE_LOOPBACK_WEBHOOKS", "true")
    # the audit pages: demo mode (its development OpenID issuer), on http://, so the cookie is not HTTPS-only
    os.environ.setdefault("BRB_DEMO", "true")
    os.environ.setdefault("BRB_OIDC_ISSUER", f"http://{host}:{port}/audit/dev-issuer")
    os.environ.setdefault("BRB_SESSION_COOKIE_SECURE", "false")
    broker = None
    try:
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            if port_open("127.0.0.1", kafka_port):
                kafka_port = free_port()
            Path(".var").mkdir(exist_ok=True)
            broker = LoopbackBroker(kafka_port, log_file=Path(".var/broker.log"), die_with_parent=True).start()
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            typer.echo(f"loopback Kafka-protocol broker on {broker.bootstrap}")
        from gateway.app import create_app
        from gateway.db.migrate import upgrade
        from gateway.seed import seed_demo
        from gateway.settings import Settings

        settings = Settings()
        upgrade(settings.database_url, settings.database_schema)
        orgs = _with_services(seed_demo)
        shown = make_url(settings.database_url).render_as_string(hide_password=True)  # never a password on screen
        typer.echo(f"database {shown} migrated; {orgs} demo organisation(s) registered")
        typer.echo(
            "\nGet a token (one per request: every jti is accepted once), e.g. for PI Vught:\n"
            "  TOKEN=$(.venv/bin/brb token 00000001001234567000)\n"
            f"  curl -H \"Authorization: Bearer $TOKEN\" http://{host}:{port}/api/v1/inbox\n"
            f"API document: http://{host}:{port}/api/v1/openapi.json — readiness: http://{host}:{port}/health/ready\n"
            f"Audit officers' pages: http://{host}:{port}/audit/ (demo login: the built-in development issuer)\n"
        )
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", log_config=None, access_log=False)
    finally:
        if broker:
            broker.stop()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
