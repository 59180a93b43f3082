"""Simulated hours for outage tests: the breaker's clock and moto's SQS delays move on
together, so a six-hour outage with 15-minute deferrals runs in seconds."""

from __future__ import annotations

import time
import types

import pytest
from moto.core.utils import unix_time_millis

from imgix_autoadder.rate import breaker
from tests.harness.events import queued


class SimulatedTime:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset_s = 0.0
        clock = types.SimpleNamespace(time=lambda: time.time() + self.offset_s)
        monkeypatch.setattr(breaker, "time", clock)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def sleep(self, seconds: float) -> None:
        """A wait that takes no real time."""
        self.offset_s += seconds

    def skip_to_next_delivery(self, queue: str) -> float | None:
        """Move time on to when the queue's next delayed message becomes visible (as SQS
        would deliver it); returns the seconds skipped, or None when none is delayed."""
        now_ms = unix_time_millis()
        messages = queued(queue)
        delayed = [m.delayed_until for m in messages if m.delayed_until > now_ms]
        if not delayed:
            return None
        skip_ms = min(delayed) - now_ms + 1
        for message in messages:
            if message.delayed_until > now_ms:
                message.delayed_until -= skip_ms
            if message.visible_at > now_ms:
                message.visible_at -= skip_ms
        self.offset_s += skip_ms / 1000
        return skip_ms / 1000
