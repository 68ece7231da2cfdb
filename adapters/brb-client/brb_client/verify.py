"""``brb-verify``: check a received message or a gateway receipt on the command line (also ``brb verify``).

    brb-verify message  message.json  --keys vught.jwks.json   # GET /messages/{id} as received; the sender's keys
    brb-verify receipt  receipt.json  --jwks gateway.jwks.json # a 201 or acknowledgement answer, or the bare JWS

Exit code 0: authentic and unaltered; 1: not (the reason is printed); 2: the files cannot be read. Keys come from
files, never from the gateway at the moment of checking: fetch them once (GET /organisations/{oin}/jwks,
/.well-known/jwks.json) and keep them, so the check holds even against the gateway."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from brb_client.proof import ProofInvalid, verify_payload
from brb_client.receipts import ReceiptInvalid, verify_receipt

app = typer.Typer(help="Check a received message's signature or a gateway receipt", no_args_is_help=True,
                  add_completion=False)


def _read(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        typer.echo(f"cannot read {what} {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()  # a bare compact JWS


@app.command()
def message(file: Annotated[Path, typer.Argument(help="the message as GET /api/v1/messages/{id} answered (JSON)")],
            keys: Annotated[Path, typer.Option(help="the sender's public JWK or JWK Set (GET /organisations/{oin}/jwks)")]) -> None:
    """Is the payload what its sender signed, unaltered, for the sections you got?"""
    view, key_set = _read(file, "message"), _read(keys, "keys")
    if not isinstance(view, dict) or not isinstance(view.get("payload"), dict):
        typer.echo(f"{file} holds no message with a payload", err=True)
        raise typer.Exit(2)
    proof = view.get("proof")
    if not proof:
        typer.echo("NOT VERIFIED: the message carries no proof (sent before the gateway kept proofs)")
        raise typer.Exit(1)
    try:
        verified = verify_payload(view["payload"], proof, key_set)
    except ProofInvalid as exc:
        typer.echo(f"NOT AUTHENTIC: {exc}")
        raise typer.Exit(1) from None
    if not verified.signed:
        typer.echo(f"UNSIGNED: the payload matches its digest {verified.payload_digest}, but the sender did not sign it")
        raise typer.Exit(1)
    typer.echo(f"AUTHENTIC: signed by key {verified.kid} of {view.get('senderOin', 'the sender')}; payload digest "
               f"{verified.payload_digest}; {len(proof.get('salts') or {})} section(s) received, "
               f"{len(proof.get('withheld') or {})} withheld")


@app.command()
def receipt(file: Annotated[Path, typer.Argument(help="the gateway's answer with signedReceipt (JSON), or the JWS itself")],
            jwks: Annotated[Path, typer.Option(help="the gateway's JWK Set (/.well-known/jwks.json)")]) -> None:
    """Did the gateway sign this receipt, unaltered? Prints its claims."""
    answer, key_set = _read(file, "receipt"), _read(jwks, "JWK Set")
    token = answer.get("signedReceipt") if isinstance(answer, dict) else answer
    if not isinstance(token, str):
        typer.echo(f"{file} holds no signedReceipt", err=True)
        raise typer.Exit(2)
    try:
        claims = verify_receipt(token, key_set if isinstance(key_set, dict) else {})
    except ReceiptInvalid as exc:
        typer.echo(f"NOT AUTHENTIC: {exc}")
        raise typer.Exit(1) from None
    typer.echo("AUTHENTIC: signed by the gateway")
    typer.echo(json.dumps(claims, indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
