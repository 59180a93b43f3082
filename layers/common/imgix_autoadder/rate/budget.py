"""One rate budget per imgix account and limit class, shared through DynamoDB by every
caller: each indexer environment, the backfill, the upload functions, other stacks.

imgix counts an account's requests per endpoint class ("API Rate Limits"). Pacers inside
one process cannot see each other, so they either divide the limit in advance (and waste
what idle environments do not use) or collide. Here every caller reserves its slot on one
shared schedule:

- a DynamoDB item per (account, class) holds `next_ms`, the first free slot. While the
  schedule is busy a caller moves it on by one interval with an atomic conditional
  UpdateItem (`next_ms >= now`, and no later than the caller can wait) and takes the slot
  it moved past: one write per imgix call, and callers never lose races to each other.
  When the schedule is idle (`next_ms < now`) a caller takes "now". A caller only reserves
  when it has a call to make: nothing is held while idle.
- slots are spaced strictly (no bursts): imgix's window is undocumented, and strict spacing
  at limit x SPACING_MARGIN never exceeds a limit counted over any window of its length.
- priority: a caller that only takes idle slots (the backfill) never queues ahead, so it
  gets only what the others leave. A schedule busy only with that caller's own last call
  is idle to everyone else: it waits for the next slot rather than failing.
- 429s: the shared item also holds where the account's window was last met (a ceiling),
  and every caller spaces its slots by `control.interval_ms`: a short backoff, a hold
  just under the capacity found, then a probe back to the limit (control.py explains
  the constants). A lone 429 from the stack's own clumping costs about a second of rate;
  a co-tenant is shared with, not yielded to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgix_autoadder.rate.control import Throttle, after_429, interval_ms
from imgix_autoadder.rate.pacing import SlotTooLate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SPACING_MARGIN = 0.95  # loopback-steady arrivals: 5% keeps two slots out of one window
MAX_TRIES = 40
THROTTLE_TRIES = 3
ITEM_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Reading:
    next_ms: int
    throttle: Throttle = field(default_factory=Throttle)


class SharedRateLimiter:
    """The RateLimiter interface (acquire, interval_s) over a shared DynamoDB schedule."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        account: str,
        limit_class: str,
        per_second: float,
        idle_only: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._key = {"id": {"S": f"{account}#{limit_class}"}}
        self._base_ms = round(1000.0 / (per_second * SPACING_MARGIN)) if per_second > 0 else 0
        # A call may leave this much after its slot and still keep the window: a call late
        # by L brings the window's n-th next call L closer, and n slots hold n x the slack
        # SPACING_MARGIN leaves, 5.3% of the window (1 s; refresh: 60 s). Half of it is
        # kept for jitter. Later than that, the call takes a new slot.
        window_ms = 1000.0 if per_second >= 1 else 60_000.0
        self._tolerance_ms = max(1, round(0.5 * (1 / SPACING_MARGIN - 1) * window_ms))
        self._idle_only = idle_only
        self._clock = clock
        self._sleep = sleep
        self._seen = Reading(0)
        self._slots = threading.local()  # each thread's last granted slot, for throttled()
        # The schedule's next_ms as this process last left it: busy only with its own
        # previous call, the schedule is idle to everybody else.
        self._own_next_ms = -1
        self._write_ms = 0  # the budget's UpdateItem round trip, averaged
        self._failed_next_ms = -1  # next_ms as the last lost race returned it
        self._lock = threading.Lock()
        # One reservation waiting per process: the schedule never holds more future slots
        # than there are environments, so a raised penalty applies from the next slot on.
        self._waiting = threading.Lock()
        self.aws_calls = 0

    @property
    def interval_s(self) -> float:
        return self._base_ms / 1000.0

    def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
        """Reserve the next shared slot and sleep until it; return the seconds waited.
        SlotTooLate (nothing reserved) when it is further off than `max_wait_s`, or, for
        an idle-only caller, when the schedule is busy at all.

        `late_s`: how much later than its slot this call may reach imgix (a new
        connection's handshake): the next slot is kept that much further off, so that a
        late call and the on-time one after it never arrive closer than the interval."""
        if self._base_ms == 0:
            return 0.0
        started = self._clock()
        if not self._waiting.acquire(timeout=-1 if max_wait_s is None else max(0.0, max_wait_s)):
            raise SlotTooLate(self._clock() - started)
        try:
            left = None if max_wait_s is None else max_wait_s - (self._clock() - started)
            return self._acquire(left, round(late_s * 1000))
        finally:
            self._waiting.release()

    def _acquire(self, max_wait_s: float | None, late_ms: int) -> float:
        for _ in range(MAX_TRIES):
            now = self._now_ms()
            latest = now + round(max_wait_s * 1000) if max_wait_s is not None else 2**62
            self._failed_next_ms = -1  # only this attempt's lost race may answer below
            # The earliest this caller can use a slot: once its write has returned. A slot
            # before that would be sent late, on the heels of the next one.
            soon = now + self._write_ms
            with self._lock:
                believed_idle = self._seen.next_ms < soon
            if not (believed_idle or self._idle_only):
                slot = self._queue_behind(soon, latest, late_ms)
                if slot is not None:
                    self._slots.ms = slot
                    return self._wait_for(slot)
            if self._take_idle(soon, late_ms):
                self._slots.ms = soon
                return 0.0
            # Neither: the failed write said why (or, without its item, a read does).
            busy_until = self._failed_next_ms if self._failed_next_ms >= 0 else self._read().next_ms
            wait_s = (busy_until - now) / 1000.0
            if busy_until > latest:
                raise SlotTooLate(wait_s)
            if self._idle_only and busy_until >= now:
                if busy_until != self._own_next_ms:
                    raise SlotTooLate(wait_s)  # someone else's call: yield to it
                # Busy with this caller's own last call (a cold start's Source read):
                # nobody else wants the next slot, so wait for it and take it idle.
                self._sleep(wait_s + 0.001)
        raise SlotTooLate(self.interval_s)  # heavy contention: hand the work back

    def _queue_behind(self, now: int, latest: int, late_ms: int = 0) -> int | None:
        """The schedule is busy: move it on by one interval, atomically, whatever others do
        at the same time (no expected value, so no lost race). None if it is idle, or the
        free slot is later than `latest`."""
        interval = self._interval_ms(now) + late_ms
        try:
            taken = self._call(
                "update_item",
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET next_ms = next_ms + :interval, expires_at = :ttl",
                ConditionExpression="next_ms >= :now AND next_ms <= :latest",
                ExpressionAttributeValues={
                    ":interval": {"N": str(interval)},
                    ":now": {"N": str(now)},
                    ":latest": {"N": str(latest)},
                    ":ttl": {"N": str(now // 1000 + ITEM_TTL_S)},
                },
                ReturnValues="ALL_NEW",  # our slot, and the shared throttle, at no extra call
                ReturnValuesOnConditionCheckFailure="ALL_OLD",  # and if not, why not
            )
        except ClientError as exc:
            self._learn_from_failure(exc)
            return None
        reading = self._remember(taken.get("Attributes", {}))
        self._own_next_ms = reading.next_ms
        return reading.next_ms - interval

    def _take_idle(self, now: int, late_ms: int = 0) -> bool:
        """The schedule is idle (its next slot is before `now`, when this caller can send
        at the earliest): take `now`."""
        try:
            taken = self._call(
                "update_item",
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET next_ms = :next, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(next_ms) OR next_ms < :now",
                ExpressionAttributeValues={
                    ":next": {"N": str(now + self._interval_ms(now) + late_ms)},
                    ":now": {"N": str(now)},
                    ":ttl": {"N": str(now // 1000 + ITEM_TTL_S)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            self._learn_from_failure(exc)
            return False
        self._own_next_ms = self._remember(taken.get("Attributes", {})).next_ms
        return True

    def _learn_from_failure(self, exc: ClientError) -> None:
        """A lost race returns the item as it is: no read needed to know the schedule."""
        _only_condition_failures(exc)
        item = exc.response.get("Item")
        if isinstance(item, dict) and item:
            self._failed_next_ms = self._remember(item).next_ms

    def on_time(self) -> bool:
        """The slot this thread was last granted may still be used: sent now, the call
        keeps its distance to the next one (a call made late by a busy host, garbage
        collection or a slow write must not arrive on the heels of the next slot)."""
        if self._base_ms == 0:
            return True
        slot = int(getattr(self._slots, "ms", 0))
        return self._now_ms() <= slot + self._tolerance_ms

    def _wait_for(self, slot: int) -> float:
        wait_s = max(0.0, (slot - self._now_ms()) / 1000.0)
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s

    def throttled(self) -> None:
        """A 429 despite the budget, for the call this thread was last granted. Every
        caller learns the new spacing from the item at its next reservation."""
        if self._base_ms == 0:
            return
        slot = int(getattr(self._slots, "ms", 0))
        for _ in range(THROTTLE_TRIES):
            now = self._now_ms()
            reading = self._read()
            raised = after_429(self._base_ms, reading.throttle, now, slot, reading.next_ms)
            if raised is None:
                return  # granted before the last raise: already accounted for
            try:
                self._call(
                    "update_item",
                    TableName=self._table,
                    Key=self._key,
                    UpdateExpression=(
                        "SET ceiling_ms = :c, throttle_at_ms = :at, granted_before_ms = :g, "
                        "step_pct = :s, expires_at = :ttl"
                    ),
                    # Two 429s at once must not raise twice: the second re-reads instead.
                    ConditionExpression=(
                        "attribute_not_exists(throttle_at_ms) OR throttle_at_ms = :old"
                    ),
                    ExpressionAttributeValues={
                        ":c": {"N": str(raised.ceiling_ms)},
                        ":at": {"N": str(raised.at_ms)},
                        ":g": {"N": str(raised.granted_before_ms)},
                        ":s": {"N": str(raised.step_pct)},
                        ":old": {"N": str(reading.throttle.at_ms)},
                        ":ttl": {"N": str(now // 1000 + ITEM_TTL_S)},
                    },
                )
            except ClientError as exc:
                _only_condition_failures(exc)
                continue
            with self._lock:
                self._seen = Reading(reading.next_ms, raised)
            return

    # -- helpers -----------------------------------------------------------------------------
    def _interval_ms(self, now: int) -> int:
        with self._lock:
            throttle = self._seen.throttle
        return interval_ms(self._base_ms, throttle, now)

    def _read(self) -> Reading:
        item = self._call(
            "get_item", TableName=self._table, Key=self._key, ConsistentRead=True
        ).get("Item", {})
        return self._remember(item)

    def _remember(self, item: dict[str, Any]) -> Reading:
        def number(name: str) -> int:
            return int(item.get(name, {}).get("N", 0))

        reading = Reading(
            number("next_ms"),
            Throttle(
                number("ceiling_ms"),
                number("throttle_at_ms"),
                number("granted_before_ms"),
                number("step_pct"),
            ),
        )
        with self._lock:
            self._seen = reading
        return reading

    def _call(self, operation: str, **kw: Any) -> dict[str, Any]:
        self.aws_calls += 1
        started = self._clock()
        try:
            result: dict[str, Any] = getattr(self._ddb, operation)(**kw)
        finally:
            if operation == "update_item":  # a moving average of the write's round trip
                elapsed = (self._clock() - started) * 1000
                self._write_ms = round(0.8 * self._write_ms + 0.2 * min(elapsed, 100.0))
        return result

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _only_condition_failures(exc: ClientError) -> None:
    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        raise exc
