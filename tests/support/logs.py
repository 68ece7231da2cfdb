"""What the gateway's loggers write, captured with the production JSON formatter and parsed: the lines
an operator's log shipper would get."""
from __future__ import annotations

import json
import logging

from gateway.logs import JsonFormatter
from tests.conftest import eventually


class JsonLines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.raw: list[str] = []

    def emit(self, record):
        self.raw.append(self.format(record))

    @property
    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.raw]

    def events(self, name: str) -> list[dict]:
        return [line for line in self.parsed if line["event"] == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        async def enough():
            return len(self.events(name)) >= count
        await eventually(enough, timeout=timeout, interval=0.02)
        return self.events(name)
