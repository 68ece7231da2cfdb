"""Shared pieces of the security suites: the scopes an organisation's kind may hold, and the summary
lines each suite leaves for CI's output (printed at the end of the run, also without ``-s``)."""
from __future__ import annotations

import pytest

from contracts.parties import KINDS

SUMMARY: list[str] = []


def all_scopes(org) -> str:
    """Every scope the organisation's kind may hold: the widest token it can get."""
    return " ".join(sorted(KINDS[org.kind].scopes))


def backend_of(services) -> str:
    return "postgresql" if services.settings.database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def summary_line():
    """Call with one line; it is printed now (visible with -s) and again in the terminal summary."""

    def add(line: str) -> None:
        print(line)
        SUMMARY.append(line)

    return add


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("security suites")
        for line in SUMMARY:
            terminalreporter.write_line(line)
