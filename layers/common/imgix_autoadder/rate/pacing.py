"""Client-side pacing so one execution environment never outruns its share of imgix's limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

from imgix_autoadder.rate.lanes import QueueDrained, cannot_say


class SlotTooLate(Exception):
    """The next slot comes later than the caller can wait; nothing was taken."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"next pacing slot in {wait_s:.1f} s")
        self.wait_s = wait_s


class Pacer(Protocol):
    """What the client asks of a pacer: in-process (RateLimiter) or shared (rate/budget.py).
    acquire before a call, on_time just before it is sent, answered once it is back (or
    failed), throttled when imgix answered 429, idle when the invocation is over."""

    @property
    def interval_s(self) -> float: ...
    def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float: ...
    def on_time(self) -> bool: ...
    def answered(self) -> None: ...
    def throttled(self) -> None: ...
    def idle(self, queue_drained: QueueDrained = cannot_say) -> None: ...


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart (no bursts), shared by all threads.

    A strict spacing rather than a bucket with burst capacity: imgix counts requests in
    fixed windows, and a burst at a window edge is exactly what earns a 429.
    """

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    @property
    def interval_s(self) -> float:
        return self._interval

    def throttled(self) -> None:
        """A 429 despite pacing: in-process pacing has nobody to tell (rate/budget.py does)."""

    def on_time(self) -> bool:
        """In-process pacing keeps PACING_HEADROOM for late calls: always on time."""
        return True

    def answered(self) -> None:
        """In-process pacing spaces sends; it does not wait for answers."""

    def idle(self, queue_drained: QueueDrained = cannot_say) -> None:
        """In-process pacing holds nothing that others could use."""

    def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
        """Block until this caller's slot; return the seconds waited (`late_s`: as in
        rate/budget.py, the next slot is kept that much further off).

        With `max_wait_s`, a slot further away than that is not taken: SlotTooLate says
        how long the caller would have had to wait, so it can hand the work back instead.
        """
        if self._interval == 0.0:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            wait = slot - now
            if max_wait_s is not None and wait > max_wait_s:
                raise SlotTooLate(wait)
            self._next_slot = slot + self._interval + late_s
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass
class Pacers:
    """One pacer per published imgix limit class (API Rate Limits): the default, refresh,
    upload, purge and get asset."""

    default: Pacer
    refresh: Pacer
    upload: Pacer
    purge: Pacer
    get_asset: Pacer = field(default_factory=lambda: RateLimiter(0))

    def idle(self, queue_drained: QueueDrained = cannot_say) -> None:
        """The invocation is over: every class gives back what it should not keep."""
        for limit in fields(self):
            getattr(self, limit.name).idle(queue_drained)

    def class_of(self, pacer: Pacer) -> str:
        """The limit class a pacer stands for (a field name)."""
        for limit in fields(self):
            if getattr(self, limit.name) is pacer:
                return limit.name
        return "default"

    @classmethod
    def unlimited(cls) -> Pacers:
        return cls(RateLimiter(0), RateLimiter(0), RateLimiter(0), RateLimiter(0))

    @classmethod
    def per_second(
        cls,
        default: float,
        refresh_per_minute: float,
        upload: float,
        purge: float,
        get_asset: float = 0.0,
    ) -> Pacers:
        return cls(
            RateLimiter(default),
            RateLimiter(refresh_per_minute / 60.0),
            RateLimiter(upload),
            RateLimiter(purge),
            RateLimiter(get_asset),
        )


class Patient:
    """A pacer for a caller whose work cannot be handed back (an operator's command, the
    scheduled audit): where the pacer says the slot is too far off (or, idle-only, that
    someone else holds it), wait and ask again, within the caller's own bound."""

    def __init__(self, pacer: Pacer, sleep: Callable[[float], None] = time.sleep) -> None:
        self._pacer = pacer
        self._sleep = sleep

    @property
    def interval_s(self) -> float:
        return self._pacer.interval_s

    def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
        """Waits at most `max_wait_s` in all (None: as long as it takes)."""
        waited = 0.0
        while True:
            left = None if max_wait_s is None else max(0.0, max_wait_s - waited)
            try:
                return waited + self._pacer.acquire(left, late_s)
            except SlotTooLate as late:
                pause = min(5.0, max(0.05, late.wait_s))
                if left is not None and pause > left:
                    raise
                self._sleep(pause)
                waited += pause

    def on_time(self) -> bool:
        return self._pacer.on_time()

    def answered(self) -> None:
        self._pacer.answered()

    def idle(self, queue_drained: QueueDrained = cannot_say) -> None:
        self._pacer.idle(queue_drained)

    def throttled(self) -> None:
        self._pacer.throttled()

    @staticmethod
    def all_of(pacers: Pacers) -> Pacers:
        return Pacers(*(Patient(getattr(pacers, f.name)) for f in fields(pacers)))
