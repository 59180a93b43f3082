"""One rate budget per imgix account and limit class, shared through DynamoDB by every
caller (each indexer environment, the backfill, the upload functions, other stacks): the
limit's lanes (rate/lanes.py, the design and its constants), leased by each process for
the calls it has to make, in one item per account and class (rate/lane_table.py).

Within a process, sends are spread window/N apart and a call waits for the soonest lane,
one it holds or one it can claim; one thread at a time watches the item for lanes that
others hold. A caller that only takes idle lanes (the backfill) claims only a lane that is
free now, holds at most one and releases it after each call.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from imgix_autoadder.rate.lane_table import LaneTable
from imgix_autoadder.rate.lanes import (
    POLL_SPREAD_WINDOWS,
    POLL_WINDOWS,
    Held,
    Lane,
    Limit,
    best_held,
    claimable,
    free_after_answer,
    lease,
    leased_by_others,
    park,
    released_when_idle,
    soonest_claim,
    soonest_use,
    spaced,
)
from imgix_autoadder.rate.pacing import SlotTooLate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_LOST_RACES = 40
WAIT_STEP_S = 1.0  # a thread waiting for its own lanes' answers looks again at least this often


class SharedRateLimiter:
    """The Pacer interface (acquire, on_time, answered, throttled) over shared lanes."""

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
        self._limit = Limit.per_second(per_second)
        key = f"{account}#{limit_class}"
        # Public: its counts of DynamoDB calls and writes are the bench's.
        self.table = LaneTable(dynamodb, table, key, self._limit.count, clock)
        self._idle_only = idle_only
        self._clock = clock
        self._sleep = sleep
        self._me = uuid.uuid4().hex[:16]
        self._lanes: dict[int, Lane] = {index: Lane() for index in range(self._limit.count)}
        self._held: dict[int, Held] = {}
        self._claiming: set[int] = set()
        self._polling = False  # a thread of this process sleeps to read the item
        self._sends: list[int] = []  # this process's booked send times, recent and to come
        self._cond = threading.Condition()
        self._mine = threading.local()  # .lane: this thread's call's lane; .last: its last

    @property
    def interval_s(self) -> float:
        return self._limit.spacing_ms / 1000.0

    # -- the Pacer interface -----------------------------------------------------------------
    def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
        """Wait for a lane and its send time; return the seconds waited. SlotTooLate when
        that is further than `max_wait_s` (idle-only: when no lane is free now). `late_s`
        (a handshake) needs no room: a lane's next call waits for this one's answer."""
        if not self._limit.count:
            return 0.0
        started = self._now_ms()
        latest = started + round(max_wait_s * 1000) if max_wait_s is not None else 2**62
        races, held_back = 0, 0.0  # lost races; seconds slept or waited (not DynamoDB's)
        while True:
            now = self._now_ms()
            with self._cond:
                best, held_at = self._best_held(now, latest)
                choice = self._best_claim(now, latest, best[1] if best else None)
                if best is not None and choice is None:
                    send_at = self._grant(*best)
                else:
                    send_at = None
                    if choice is not None:
                        self._claiming.add(choice)
                # Another thread's claim, or a call on a held lane, will wake this one.
                in_flight = bool(self._claiming) or any(h.busy for h in self._held.values())
            if send_at is not None:
                wait_s = max(0.0, (send_at - self._now_ms()) / 1000.0)
                self._sleep(wait_s)
                return held_back + wait_s
            if choice is not None:
                try:
                    won = self._claim(choice, now)
                finally:
                    with self._cond:
                        self._claiming.discard(choice)
                        self._cond.notify_all()
                if not won:
                    races += 1
                    if races > MAX_LOST_RACES:
                        raise SlotTooLate(self.interval_s)  # heavy contention: hand it back
                    # Others saw the lane free too: step apart, and look again (a read is
                    # cheaper than another lost write) before the next try.
                    spread = POLL_WINDOWS * self._limit.window_ms
                    pause_s = random.uniform(0, min(spread, max(0, latest - now))) / 1000.0
                    self._sleep(pause_s)
                    held_back += pause_s
                    self._remember(self.table.read())
                continue
            self._wait_for_a_lane(now, latest, in_flight, held_at)
            held_back += max(0, self._now_ms() - now) / 1000.0

    def on_time(self) -> bool:
        """Whether this thread's lane may still carry its call (its lease runs); if not, it
        is given back unused and the caller acquires again."""
        lane = getattr(self._mine, "lane", None)
        if lane is None:
            return True
        with self._cond:
            held = self._held.get(lane)
            if held is not None and self._now_ms() <= held.until_ms:
                return True
            if held is not None:
                held.busy = False
            self._mine.lane = None
            self._cond.notify_all()
        return False

    def answered(self) -> None:
        """This thread's call is back (answered or not): its lane is free a window from now.
        After the lease's last call it goes to whoever waits, or the lease is renewed."""
        lane = getattr(self._mine, "lane", None)
        if lane is None:
            return
        self._mine.lane, self._mine.last = None, lane
        now = self._now_ms()
        with self._cond:
            held = self._held.get(lane)
            if held is None:
                return
            held.busy = False
            held.ready_ms = free_after_answer(now, self._limit)
            done = self._idle_only or held.ready_ms > held.until_ms
            if done:
                del self._held[lane]
            self._cond.notify_all()
        if not done:
            return
        if self._idle_only or self._wanted(now, read=True):
            self._release(lane, held)
            return
        until, free = lease(now, held.ready_ms, self._limit)
        renewed = Lane(self._me, until, free, 0, 0)
        if self.table.write(lane, renewed, self._me, held.until_ms):
            with self._cond:
                self._lanes[lane] = renewed
                self._held[lane] = Held(until, held.ready_ms)
                self._cond.notify_all()

    def idle(self) -> None:
        """The invocation is over: `released_when_idle` go back, rather than lapse."""
        now = self._now_ms()
        with self._cond:
            snapshot = dict(self._held)  # (the item is read, if need be, outside the lock)
        if not (going := released_when_idle(snapshot, now, lambda at: self._wanted(at, True))):
            return
        with self._cond:
            idle = {index: self._held.pop(index) for index in going if index in self._held}
        for index, held in idle.items():
            self._release(index, held)

    def _say_waiting(self, now: int) -> None:
        """Holding no lane while others lease theirs: say so (`w`, once a window at most)."""
        with self._cond:
            waits = not (self._idle_only or self._held) and leased_by_others(
                self._lanes, now, self._me
            )
        if waits and now - self.table.wanted_ms > self._limit.window_ms:
            self.table.want(now)  # holders give lanes back, instead of renewing them

    def _wanted(self, now: int, read: bool = False) -> bool:  # did a caller find none lately?
        if read:
            self._remember(self.table.read())
        return now - self.table.wanted_ms <= 2 * self._limit.window_ms

    def throttled(self) -> None:
        """A 429 for this thread's last call (an outside user's doing): park its lane."""
        lane = getattr(self._mine, "last", None)
        if lane is None:
            return
        self._remember(self.table.read())  # another environment may have parked a lane just now
        now = self._now_ms()
        with self._cond:
            parked = park(self._lanes, lane, now, self._limit)
            if parked is None:
                return
            self._held.pop(lane, None)
            self._cond.notify_all()
        if self.table.write(lane, parked, self._me):
            with self._cond:
                self._lanes[lane] = parked

    # -- choosing ----------------------------------------------------------------------------
    def _best_held(self, now: int, latest: int) -> tuple[tuple[int, int] | None, int | None]:
        """Under the lock: rate/lanes.py's best_held, after the leases that ended unused."""
        spacing = round(self._limit.spacing_ms)
        self._sends = [at for at in self._sends if at > now - spacing]
        for index in [i for i, held in self._held.items() if held.until_ms < now and not held.busy]:
            del self._held[index]  # the item already says so
        return best_held(self._held, now, latest, self._sends, spacing)

    def _grant(self, index: int, send_at: int) -> int:  # under the lock
        self._held[index].busy = True
        self._sends.append(send_at)
        self._mine.lane = index
        return send_at

    def _best_claim(self, now: int, latest: int, held_at: int | None) -> int | None:
        """Under the lock: a lane to claim, if it would carry the call sooner than the held
        lanes can (by more than the write it costs)."""
        if (self._idle_only and self._held) or self._claiming:
            return None  # one claim at a time (idle-only: one lane at a time)
        taken = self._held.keys() | self._claiming
        others = {index: lane for index, lane in self._lanes.items() if index not in taken}
        usable_by = now if self._idle_only else latest
        candidates = claimable(others, now, usable_by, self._me, self._wanted(now))
        if not candidates:
            return None
        first = candidates[0]
        claim_at = spaced(
            max(now + self.table.write_ms, self._lanes[first].free_ms),
            self._sends,
            round(self._limit.spacing_ms),
        )
        if held_at is not None and held_at <= claim_at:
            return None
        return first

    def _wait_for_a_lane(self, now: int, latest: int, in_flight: bool, held_at: int | None) -> None:
        """Nothing to take or claim: wait for this process's answers, or read the item every
        half window (holders release early), or SlotTooLate if nothing comes by `latest`."""
        with self._cond:
            others = {i: lane for i, lane in self._lanes.items() if i not in self._held}
        contested = self._wanted(now)
        change = soonest_claim(others, now, self._me, contested)
        if not in_flight and (self._idle_only or change is None or change > latest):
            self._say_waiting(now)
            soonest = soonest_use(others, self._me, held_at, now, contested)
            raise SlotTooLate(max(0, soonest - now) / 1000.0)
        if in_flight and now >= latest:
            raise SlotTooLate(0.0)
        until = min(latest, change or latest, now + round(POLL_WINDOWS * self._limit.window_ms))
        with self._cond:  # one thread polls; the rest wait for it or for their own answers
            if in_flight or self._polling:
                self._cond.wait(timeout=max(0.001, min(WAIT_STEP_S, (until - now) / 1000.0)))
                return
            self._polling = True
        try:
            spread = random.uniform(0, POLL_SPREAD_WINDOWS * self._limit.window_ms)
            self._sleep((until - now + spread) / 1000.0)
            self._remember(self.table.read())
            self._say_waiting(self._now_ms())
        finally:
            with self._cond:
                self._polling = False
                self._cond.notify_all()

    # -- the shared item ---------------------------------------------------------------------
    def _claim(self, index: int, now: int) -> bool:
        """Lease lane `index`; False when somebody else was quicker (the item came back)."""
        with self._cond:
            assumed_free = self._lanes[index].free_ms
        if self._idle_only:
            assumed_free = min(assumed_free, now)
        until, free = lease(now, assumed_free, self._limit)
        won, before = self.table.claim(index, self._me, until, free, now, max(assumed_free, now))
        self._remember(before)
        if won:
            with self._cond:
                old = before[index]
                self._lanes[index] = Lane(self._me, until, free, old.parked_until_ms, 0)
                self._held[index] = Held(until, max(now, old.free_ms))
                self._cond.notify_all()
        return won

    def _release(self, index: int, held: Held) -> None:
        """The lane is anybody's from `ready_ms` (its last call's answer plus a window)."""
        with self._cond:
            lane = self._lanes[index]
        released = Lane(self._me, 0, held.ready_ms, lane.parked_until_ms, lane.parked_at_ms)
        if self.table.write(index, released, self._me, held.until_ms):
            with self._cond:
                self._lanes[index] = released

    def _remember(self, lanes: dict[int, Lane]) -> None:
        with self._cond:
            for index, lane in lanes.items():
                if index not in self._held:  # what this process holds, it knows best
                    self._lanes[index] = lane

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
