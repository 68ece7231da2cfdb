"""The log format (README, 'Logs'): JSON lines with the bound context, scrubbed, tracebacks without locals."""
import json
import logging
from datetime import datetime, timezone

import pytest

from gateway.logs import REDACTED, bound, configure_logging, scrub
from gateway.services import current_trace_id
from tests.support.logs import JsonLines

BSN = "999990019"
JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiIwMDAwMDAwMTAwMTIzNDU2NzAwMCJ9.c2lnbmF0dXJl"
OIN = "00000001001234567000"


@pytest.fixture
def lines():
    configure_logging()
    handler, logger = JsonLines(), logging.getLogger("brb.test")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.mark.parametrize("text", [
    f"no subject for bsn {BSN}", f"bsn={BSN};", f"'{BSN}'", "BSN 9999.90.019 given", f"Bearer {JWT}",
    "[parameters: ('999990019', 'De Vries', 'vrij tekst')]",
])
def test_the_scrubber_removes_bsn_like_numbers_jwts_and_sql_parameters(text):
    cleaned = scrub(text)
    assert REDACTED in cleaned
    assert BSN not in cleaned and "9999.90.019" not in cleaned and "eyJ" not in cleaned and "Vries" not in cleaned


@pytest.mark.parametrize("text", [
    f"organisation {OIN}", "trace 4bf92f3577b34da6a3ce929d0e0e4736", "message 0b6f8c0a-3e5d-4c1a-9d2b-123456789abc",
    "attempt 12345678 of 1234567890", "at 2026-11-02T10:00:00Z",
])
def test_the_scrubber_leaves_oins_ids_and_other_numbers_alone(text):
    assert scrub(text) == text


def test_a_line_carries_time_level_logger_event_the_bound_context_and_extra_fields(lines):
    log = logging.getLogger("brb.test")
    token = current_trace_id.set("4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        with bound(worker="relay"):
            with bound(round="claim"):
                log.info("relay.published", extra={"events": 3})
            log.warning("relay.idle")
        log.info("outside")
    finally:
        current_trace_id.reset(token)
    inner, outer, after = lines.parsed
    assert inner["event"] == "relay.published" and inner["level"] == "info" and inner["logger"] == "brb.test"
    assert inner["worker"] == "relay" and inner["round"] == "claim" and inner["events"] == 3
    assert inner["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert outer["level"] == "warning" and outer["worker"] == "relay" and "round" not in outer
    assert "worker" not in after and "round" not in after  # the binding ends with its block
    assert inner["time"].endswith("Z")
    stamp = datetime.fromisoformat(inner["time"].replace("Z", "+00:00"))  # RFC 3339, UTC
    assert stamp.tzinfo == timezone.utc and abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60


def test_a_bound_callable_is_read_when_the_line_is_written(lines):
    state = {"route": None}
    with bound(route=lambda: state["route"]):
        logging.getLogger("brb.test").info("before routing")
        state["route"] = "/api/v1/messages/{message_id}"
        logging.getLogger("brb.test").info("after routing")
    before, after = lines.parsed
    assert "route" not in before and after["route"] == "/api/v1/messages/{message_id}"


def test_an_error_line_has_type_id_and_a_scrubbed_traceback_without_local_values(lines):
    def read_subject():
        local_secret = "LOCAL-VALUE-" + "x" * 8  # a local variable: its value must never be logged
        raise LookupError(f"no stay for bsn {BSN} (token {JWT}, caller {OIN}) {len(local_secret)}")

    try:
        read_subject()
    except LookupError:
        logging.getLogger("brb.test").exception("subject.lookup-failed", extra={"error_id": "e-1"})
    (line,) = lines.parsed
    raw = lines.raw[0]
    assert line["exc_type"] == "LookupError" and line["error_id"] == "e-1"
    assert "read_subject" in line["traceback"] and "Traceback (most recent call last)" in line["traceback"]
    assert OIN in line["exc_message"] and REDACTED in line["traceback"]
    assert BSN not in raw and "eyJ" not in raw and "LOCAL-VALUE-xxxxxxxx" not in raw


def test_an_error_without_an_id_gets_one(lines):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("brb.test").exception("x")
    assert len(lines.parsed[0]["error_id"]) == 36


def test_configure_logging_is_idempotent_and_writes_json_to_the_current_stderr(capsys):
    configure_logging("info")
    configure_logging("info")
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_StderrHandler"]
    assert len(ours) == 1
    capsys.readouterr()
    logging.getLogger("brb.test").info("configured", extra={"bsn_hint": f"x {BSN}"})
    err_lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [line["event"] for line in err_lines] == ["configured"] and err_lines[0]["bsn_hint"] == f"x {REDACTED}"
