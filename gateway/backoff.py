"""Exponential backoff with jitter (tenacity's strategy), as a plain attempt -> seconds function."""
from __future__ import annotations

from collections.abc import Callable

from tenacity import wait_exponential_jitter


class _Attempt:
    """The part of tenacity's RetryCallState its wait strategies read."""

    def __init__(self, number: int):
        self.attempt_number = number


def exponential_jitter(initial: float, maximum: float, jitter: float) -> Callable[[int], float]:
    strategy = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=jitter)
    return lambda attempt: strategy(_Attempt(attempt))
