"""Structured logs: one JSON object a line on stderr, with the context bound where the work happens.

Operators search by trace id, caller, route template or worker; so every line carries what is bound
(``bound(worker="relay")``; the app binds method, route template and caller OIN per request) and the
trace id of the current span (a request's, a relay round's: the OpenTelemetry trace id). Log lines
leave the gateway, so every string in them passes ``scrub()``: a 9-digit number (BSN-like), a JWT and
SQL parameters become ``[redacted]``. Tracebacks never carry the values of local variables. Log an
event name as the message and the details as ``extra`` fields: ``log.warning("relay.round-failed", extra={"retry_in": 1.5})``."""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from gateway.services import active_trace_id

REDACTED = "[redacted]"
_SECRETS = re.compile(
    r"(?<![0-9A-Za-z])(?:\d{9}|\d{4}\.\d{2}\.\d{3})(?![0-9A-Za-z])"  # a BSN, plain or dotted; never inside an id or OIN
    r"|eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,2}"  # a JWT (its header is base64 of '{"')
    r"|(\[parameters: )[^\n]*\]"  # the bound values SQLAlchemy puts in its error messages
)

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("brb_log_context", default=MappingProxyType({}))
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "brb_context", "color_message"}


def scrub(text: str) -> str:
    """What may not reach a log line, replaced; over-redacting is the safe side."""
    return _SECRETS.sub(_redact, text) if len(text) >= 7 else text


def _redact(match: re.Match) -> str:
    return f"{match.group(1)}{REDACTED}]" if match.group(1) else REDACTED


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block (this task and the tasks it starts). A
    callable value is called when a line is written: for what is known only later (the route)."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def context() -> dict[str, Any]:
    """The fields bound here and now, with the trace id (the current OpenTelemetry span's)."""
    fields = {"trace_id": active_trace_id()}
    for name, value in _context.get().items():
        fields[name] = value() if callable(value) else value
    return {k: v for k, v in fields.items() if v is not None}


def _traceback(exc_info) -> str:
    """The formatted traceback without local variables (``capture_locals=False``)."""
    return "".join(traceback.TracebackException(*exc_info, capture_locals=False).format()).rstrip()


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v) for v in value]
    return scrub(str(value))


def _clean_line(line: dict[str, Any]) -> dict[str, Any]:
    """``_clean`` for the flat top level of a line (the common case: strings and numbers), one call per value
    only where it nests."""
    out: dict[str, Any] = {}
    for key, value in line.items():
        kind = type(value)
        if kind is str:
            out[key] = scrub(value)
        elif kind is int or kind is float or kind is bool or value is None:
            out[key] = value
        else:
            out[key] = _clean(value)
    return out


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """``2026-01-31T12:00:00.123Z`` (UTC, milliseconds truncated as ``isoformat`` does); the date and time of
    the second are formatted once per second."""
    global _second
    whole = int(created)
    micros = round((created - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micros // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """time, level, logger, event, the bound context, the record's extra fields, and for an error
    ``exc_type``, ``exc_message``, ``error_id`` and ``traceback``; all scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, "brb_context", None) or {})
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc_message"] = str(record.exc_info[1])
            line.setdefault("error_id", str(uuid.uuid4()))
            line["traceback"] = _traceback(record.exc_info)
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(_clean_line(line), ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def _with_context(factory):
    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.brb_context = context()  # taken now: a handler (or pytest's caplog) may format it later
        return record

    make_record.brb = True
    return make_record


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for every logger (through the root logger), the gateway's own loggers at
    ``level``. Idempotent: the app factory and each CLI command call it."""
    if not getattr(logging.getLogRecordFactory(), "brb", False):
        logging.setLogRecordFactory(_with_context(logging.getLogRecordFactory()))
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.addHandler(_StderrHandler())
    logging.getLogger("brb").setLevel(level.upper())
