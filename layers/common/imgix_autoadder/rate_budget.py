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
- AIMD: a 429 that recurs within REPEAT_WINDOW_S means something outside the budget uses
  the account (a lone one is jitter, and costs only its retry). It doubles the shared
  interval; the penalty then fades linearly, by one base interval per PENALTY_FADE_S, so
  the schedule probes back up to the limit slowly and meets the next 429 rarely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from imgix_autoadder.pacing import SlotTooLate

SPACING_MARGIN = 0.95  # network jitter must not push two slots into one window
PENALTY_FADE_S = 300.0  # one base interval of penalty fades per this much time
REPEAT_WINDOW_S = 120.0  # a 429 counts as "something else uses the account" if it recurs
SETTLE_S = 10.0  # after a raise, 429s from calls already under way do not raise it again
MAX_PENALTY_FACTOR = 8
MAX_TRIES = 40
ITEM_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Reading:
    next_ms: int
    penalty_ms: int
    penalized_at_ms: int


class SharedRateLimiter:
    """The RateLimiter interface (acquire, interval_s) over a shared DynamoDB schedule."""

    def __init__(
        self,
        dynamodb: Any,
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
        self._idle_only = idle_only
        self._clock = clock
        self._sleep = sleep
        self._seen = Reading(0, 0, 0)
        # The schedule's next_ms as this process last left it: busy only with its own
        # previous call, the schedule is idle to everybody else.
        self._own_next_ms = -1
        self._lock = threading.Lock()
        # One reservation waiting per process: the schedule never holds more future slots
        # than there are environments, so a raised penalty applies from the next slot on.
        self._waiting = threading.Lock()
        self.aws_calls = 0

    @property
    def interval_s(self) -> float:
        return self._base_ms / 1000.0

    def acquire(self, max_wait_s: float | None = None) -> float:
        """Reserve the next shared slot and sleep until it; return the seconds waited.
        SlotTooLate (nothing reserved) when it is further off than `max_wait_s`, or, for
        an idle-only caller, when the schedule is busy at all."""
        if self._base_ms == 0:
            return 0.0
        started = self._clock()
        if not self._waiting.acquire(timeout=-1 if max_wait_s is None else max(0.0, max_wait_s)):
            raise SlotTooLate(self._clock() - started)
        try:
            left = None if max_wait_s is None else max_wait_s - (self._clock() - started)
            return self._acquire(left)
        finally:
            self._waiting.release()

    def _acquire(self, max_wait_s: float | None) -> float:
        for _ in range(MAX_TRIES):
            now = self._now_ms()
            latest = now + round(max_wait_s * 1000) if max_wait_s is not None else 2**62
            with self._lock:
                believed_idle = self._seen.next_ms < now
            if not (believed_idle or self._idle_only):
                slot = self._queue_behind(now, latest)
                if slot is not None:
                    return self._wait_for(slot)
            if self._take_idle(now):
                return 0.0
            busy_until = self._read().next_ms  # neither: find out why
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

    def _queue_behind(self, now: int, latest: int) -> int | None:
        """The schedule is busy: move it on by one interval, atomically, whatever others do
        at the same time (no expected value, so no lost race). None if it is idle, or the
        free slot is later than `latest`."""
        interval = self._interval_ms(now)
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
                ReturnValues="ALL_NEW",  # our slot, and the shared penalty, at no extra call
            )
        except ClientError as exc:
            _only_condition_failures(exc)
            return None
        reading = self._remember(taken.get("Attributes", {}))
        self._own_next_ms = reading.next_ms
        return reading.next_ms - interval

    def _take_idle(self, now: int) -> bool:
        """The schedule is idle (its next slot has passed): take this instant."""
        try:
            taken = self._call(
                "update_item",
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET next_ms = :next, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(next_ms) OR next_ms < :now",
                ExpressionAttributeValues={
                    ":next": {"N": str(now + self._interval_ms(now))},
                    ":now": {"N": str(now)},
                    ":ttl": {"N": str(now // 1000 + ITEM_TTL_S)},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            _only_condition_failures(exc)
            return False
        self._own_next_ms = self._remember(taken.get("Attributes", {})).next_ms
        return True

    def _wait_for(self, slot: int) -> float:
        wait_s = max(0.0, (slot - self._now_ms()) / 1000.0)
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s

    def throttled(self) -> None:
        """A 429 despite the budget. Recorded for every caller; when another came within
        REPEAT_WINDOW_S, the shared interval doubles (multiplicative increase)."""
        if self._base_ms == 0:
            return
        now = self._now_ms()
        ttl = {"N": str(now // 1000 + ITEM_TTL_S)}
        before = self._call(
            "update_item",
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET last_429_ms = :now, expires_at = :ttl",
            ExpressionAttributeValues={":now": {"N": str(now)}, ":ttl": ttl},
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
        previous = int(before.get("last_429_ms", {}).get("N", 0))
        seen = self._remember(before)
        if not previous or now - previous > REPEAT_WINDOW_S * 1000:
            return  # a lone 429: jitter at a window edge, or the first sign; wait for more
        if now - seen.penalized_at_ms < SETTLE_S * 1000:
            return  # raised moments ago: this call was already under way
        current = self._penalty_ms(now)
        raised = min(
            2 * (self._base_ms + current) - self._base_ms, MAX_PENALTY_FACTOR * self._base_ms
        )
        self._call(
            "update_item",
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET penalty_ms = :p, penalized_at_ms = :now, expires_at = :ttl",
            ExpressionAttributeValues={
                ":p": {"N": str(raised)},
                ":now": {"N": str(now)},
                ":ttl": ttl,
            },
        )
        with self._lock:
            self._seen = Reading(seen.next_ms, raised, now)

    # -- helpers -----------------------------------------------------------------------------
    def _interval_ms(self, now: int) -> int:
        return self._base_ms + self._penalty_ms(now)

    def _penalty_ms(self, now: int) -> int:
        """The penalty as last read, faded by one base interval per PENALTY_FADE_S."""
        with self._lock:
            seen = self._seen
        faded = (now - seen.penalized_at_ms) / 1000.0 / PENALTY_FADE_S * self._base_ms
        return max(0, round(seen.penalty_ms - faded))

    def _read(self) -> Reading:
        item = self._call(
            "get_item", TableName=self._table, Key=self._key, ConsistentRead=True
        ).get("Item", {})
        return self._remember(item)

    def _remember(self, item: dict[str, Any]) -> Reading:
        reading = Reading(
            int(item.get("next_ms", {}).get("N", 0)),
            int(item.get("penalty_ms", {}).get("N", 0)),
            int(item.get("penalized_at_ms", {}).get("N", 0)),
        )
        with self._lock:
            self._seen = reading
        return reading

    def _call(self, operation: str, **kw: Any) -> dict[str, Any]:
        self.aws_calls += 1
        result: dict[str, Any] = getattr(self._ddb, operation)(**kw)
        return result

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _only_condition_failures(exc: ClientError) -> None:
    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        raise exc
