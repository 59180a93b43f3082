"""One circuit breaker for the whole stack, so that an imgix outage costs a few calls, not
every record's timeouts and retries and, after five receives, the DLQ.

- Closed: calls go out. Each outage answer (no answer at all, or HTTP 500/502/503/504)
  adds one to a shared count; any other answer, 4xx and 429 included, shows imgix is up
  and sets it back to 0, as does a quiet OUTAGE_WINDOW_S. OUTAGE_THRESHOLD in a row,
  counted across every environment, open the breaker.
- Open: no environment calls imgix until `open_until`; callers hand their work back with
  the time left (records are deferred, spending no receive).
- Half-open: after `open_until`, one caller wins a conditional write and sends one call as
  the probe. An answer closes the breaker; an outage reopens it for twice as long, up to
  MAX_OPEN_S (SQS's longest delay, so a deferred record always returns within one). A call
  that must not be sent twice (creating an upload session or a Source) does not probe
  itself: its transport sends an idempotent request as the probe first (transport.py).

The state is one item of the rate budget's table (`<account>#breaker`, breaker_table.py)
where the stack has one, else it lives in the process. The rules are pure functions of
the state (`admission`, `opened`); the stores only read and write it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

OUTAGE_THRESHOLD = 5
# Outage answers further apart than this are not "in a row" (an environment that only
# saw successes may not have set the shared count back).
OUTAGE_WINDOW_S = 60.0
BASE_OPEN_S = 30.0
MAX_OPEN_S = 900.0
# A probe whose caller never reported (its environment died) frees the breaker after this.
PROBE_S = 30.0
# Callers that lost the probe to another look again this soon.
PROBE_WAIT_S = 5.0
# How long a process trusts its last reading: a reading a second a process while imgix
# fails, one every VIEW_CLOSED_S while it answers (an outage answer always reads afresh).
VIEW_CLOSED_S = 5.0
VIEW_OPEN_S = 1.0
ITEM_TTL_S = 24 * 3600


class BreakerOpen(Exception):
    """imgix is taken to be down: no call now; try again in `wait_s`."""

    def __init__(self, wait_s: float, failures: int) -> None:
        super().__init__(f"imgix unavailable ({failures} outage answers in a row)")
        self.wait_s = wait_s
        self.failures = failures


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0  # outage answers in a row, stack-wide
    open_until: float = 0.0  # epoch seconds; 0 while closed
    open_s: float = 0.0  # the length of the last opening (doubles while imgix stays down)
    probe_until: float = 0.0  # a probe is in flight until then

    @property
    def closed(self) -> bool:
        return self.open_until == 0.0


# -- the rules (pure) ----------------------------------------------------------------------


def admission(state: BreakerState, now: float) -> float | None:
    """None: the call may go (or may try to become the probe, when half-open).
    A number: the seconds to wait before asking again."""
    if state.closed:
        return None
    if now < state.open_until:
        return state.open_until - now
    if now < state.probe_until:
        return min(PROBE_WAIT_S, state.probe_until - now)
    return None


def opened(state: BreakerState, now: float) -> BreakerState | None:
    """The state to write after an outage answer took the count to `state.failures`:
    an opening (the first, at the threshold; or again, after a failed probe: any outage
    answer while half-open), or None (stays as it is)."""
    if now < state.open_until or (state.closed and state.failures < OUTAGE_THRESHOLD):
        return None
    open_s = min(MAX_OPEN_S, 2 * state.open_s) if state.open_s else BASE_OPEN_S
    return replace(state, open_until=now + open_s, open_s=open_s, probe_until=0.0)


# -- where the state lives ------------------------------------------------------------------


class BreakerStore(Protocol):
    def read(self) -> BreakerState: ...

    def add_outage(self, now: float) -> BreakerState:
        """Atomically one more outage answer (the first, if the last was over
        OUTAGE_WINDOW_S ago); returns the state after it."""
        ...

    def open(self, state: BreakerState, now: float) -> bool:
        """Write `state` (an opening) unless another caller opened it since `now`."""
        ...

    def claim_probe(self, now: float) -> bool:
        """Become the one caller that probes a half-open breaker."""
        ...

    def close(self) -> None: ...


class LocalBreakerStore:
    """The state in this process: for local runs and a stack without a budget table."""

    def __init__(self) -> None:
        self._state = BreakerState()
        self._last_outage = float("-inf")
        self._lock = threading.Lock()

    def read(self) -> BreakerState:
        return self._state

    def add_outage(self, now: float) -> BreakerState:
        with self._lock:
            recent = now - self._last_outage <= OUTAGE_WINDOW_S
            self._last_outage = now
            self._state = replace(self._state, failures=self._state.failures * recent + 1)
            return self._state

    def open(self, state: BreakerState, now: float) -> bool:
        with self._lock:
            if now < self._state.open_until:
                return False
            self._state = replace(state, failures=max(state.failures, self._state.failures))
            return True

    def claim_probe(self, now: float) -> bool:
        with self._lock:
            if self._state.closed or now < self._state.open_until:
                return False
            if now < self._state.probe_until:
                return False
            self._state = replace(self._state, probe_until=now + PROBE_S)
            return True

    def close(self) -> None:
        with self._lock:
            self._state = BreakerState()


def _wall_clock() -> float:
    return time.time()  # looked up at each call: tests simulate hours of outage


# -- what the transport asks ---------------------------------------------------------------


class Breaker:
    """Asked before every imgix request, told what came of it."""

    def __init__(
        self, store: BreakerStore | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self._store: BreakerStore = store or LocalBreakerStore()
        self._clock = clock or _wall_clock
        self._lock = threading.Lock()
        self._view = BreakerState()
        self._read_at = float("-inf")

    def admit(self) -> bool:
        """Raises BreakerOpen when no call may go now. True: the breaker is half-open and
        this caller is the probe; the answer to its next request (`answered` or `outage`)
        decides."""
        now = self._clock()
        view = self._current(now)
        wait = admission(view, now)
        if wait is not None:
            raise BreakerOpen(wait, view.failures)
        if view.closed:
            return False
        if not self._store.claim_probe(now):
            self._refresh(now)
            raise BreakerOpen(PROBE_WAIT_S, view.failures)
        return True

    def answered(self) -> None:
        """imgix answered (any status but an outage one): it is up."""
        with self._lock:
            seen_trouble = self._view.failures > 0 or not self._view.closed
        if seen_trouble:
            self._store.close()
            with self._lock:
                self._view, self._read_at = BreakerState(), self._clock()

    def outage(self) -> float | None:
        """imgix did not answer, or answered 5xx. Returns the seconds to wait when that
        left the breaker open (the caller then stops retrying), else None."""
        now = self._clock()
        state = self._store.add_outage(now)
        opening = opened(state, now)
        if opening is not None and self._store.open(opening, now):
            state = opening
        else:
            state = self._store.read()
        with self._lock:
            self._view, self._read_at = state, now
        return admission(state, now) if not state.closed else None

    def _current(self, now: float) -> BreakerState:
        with self._lock:
            view, read_at = self._view, self._read_at
        fresh_for = VIEW_CLOSED_S if view.closed and not view.failures else VIEW_OPEN_S
        if now - read_at < fresh_for:
            return view
        return self._refresh(now)

    def _refresh(self, now: float) -> BreakerState:
        state = self._store.read()
        with self._lock:
            self._view, self._read_at = state, now
        return state
