"""One rate budget per imgix account and limit class, shared through DynamoDB by every
caller (indexer environments, backfill, uploads, other stacks): the limit's lanes
(rate/lanes.py: the design, its constants), leased by each process for its calls, in one
item per account and class (rate/lane_table.py); what a process knows and holds of it is
rate/holdings.py. Within a process, sends are spread
window/N apart; a call waits for the soonest lane, held or claimed for it; one thread at a
time watches the item for lanes others hold. A caller that only takes idle lanes (the
backfill) claims only a lane free now, holds at most one and releases it after each call.
"""

from __future__ import annotations

import functools
import random

from imgix_autoadder.rate import lanes as rules
from imgix_autoadder.rate.holdings import Holdings
from imgix_autoadder.rate.lanes import (
    POLL_SPREAD_WINDOWS,
    POLL_WINDOWS,
    Held,
    Lane,
    QueueDrained,
    cannot_say,
)
from imgix_autoadder.rate.pacing import SlotTooLate

MAX_LOST_RACES = 40
FRESH_VIEW_MS = 50  # a claim on an older view of the item reads it first (a lost race is a write)
AFTER_THE_CLAIM = (-1, -1)  # a claim would carry this call sooner, once the one in flight is done
WAIT_STEP_S = 1.0  # a thread waiting for its own lanes' answers looks again at least this often


class SharedRateLimiter(Holdings):
    """The Pacer interface (acquire, on_time, answered, throttled) over shared lanes."""

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
        latest = self._now_ms() + round(max_wait_s * 1000) if max_wait_s is not None else 2**62
        races, held_back = 0, 0.0  # lost races; seconds slept or waited (not DynamoDB's)
        if not self.table.calls:  # the item, before a first claim: a read, not a lost race
            self._remember(self.table.read())
        while True:
            now = self._now_ms()
            with self._cond:
                best, held_at = self._best_held(now, latest)
                claim = self._best_claim(now, latest, best[1] if best else None)
                choice = None if claim == AFTER_THE_CLAIM else claim  # (whose end wakes this)
                send_at = self._grant(*best) if best is not None and claim is None else None
                # Another thread's claim, or a call on a held lane, will wake this one.
                in_flight = bool(self._claiming) or any(h.busy for h in self._held.values())
            if choice is not None:
                won, send_at = self._claim(choice[0], now, choice[1])
                if not won:
                    races += 1
                    if races > MAX_LOST_RACES:
                        raise SlotTooLate(self.interval_s)  # heavy contention: hand it back
                    # Others saw the lane free too (the item came back): step apart.
                    spread = POLL_WINDOWS * self._limit.window_ms
                    pause_s = random.uniform(0, min(spread, max(0, latest - now))) / 1000.0
                    self._sleep(pause_s)
                    held_back += pause_s
                    continue
            if send_at is not None:
                wait_s = max(0.0, (send_at - self._now_ms()) / 1000.0)
                self._sleep(wait_s)
                return held_back + wait_s
            self._wait_for_a_lane(now, latest, in_flight, held_at)
            held_back += max(0, self._now_ms() - now) / 1000.0

    def on_time(self) -> bool:
        """Whether this thread's lane may still carry its call (its lease runs); if not, it
        is given back unused and the caller acquires again."""
        lane = getattr(self._mine, "lane", None)
        if lane is None:
            return True
        with self._cond:
            if (held := self._held.get(lane)) is not None:
                if self._now_ms() <= held.until_ms:
                    return True
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
            held.ready_ms = rules.free_after_answer(now, self._limit)
            done = self._idle_only or held.ready_ms > held.until_ms
            if done:
                del self._held[lane]
            self._cond.notify_all()
        if not done or self._limit.one_call_leases:
            return  # (a one-call lease's lane is free by the item's word: no write)
        if self._idle_only or self._wanted(now, read=True):
            self._release(lane, held)
            return
        until, free = rules.lease(now, held.ready_ms, self._limit)
        renewed = Lane(self._me, until, free, 0, 0)
        if self.table.write(lane, renewed, self._me, "renew", held.until_ms):
            with self._cond:
                self._lanes[lane] = renewed
                self._held[lane] = Held(until, held.ready_ms)
                self._cond.notify_all()

    def idle(self, queue_drained: QueueDrained = cannot_say) -> None:
        """The invocation is over: `released_when_idle` go back, rather than lapse."""
        with self._cond:  # (the item is read, if need be, outside the lock)
            mine, now = dict(self._held), self._now_ms()
        wanted = functools.partial(self._wanted, read=True)
        going = rules.released_when_idle(mine, self._known, self._me, now, wanted, queue_drained)
        with self._cond:
            idle = {index: self._held.pop(index) for index in going if index in self._held}
        for index, held in idle.items():
            self._release(index, held)

    def throttled(self) -> None:
        """A 429 for this thread's last call (an outside user's doing): park its lane."""
        lane = getattr(self._mine, "last", None)
        if lane is None:
            return
        self._remember(self.table.read())  # another environment may have parked a lane just now
        now = self._now_ms()
        with self._cond:
            parked = rules.park(self._lanes, lane, now, self._limit)
            if parked is None:
                return
            self._held.pop(lane, None)
            self._cond.notify_all()
        if self.table.write(lane, parked, self._me, "park"):
            with self._cond:
                self._lanes[lane] = parked

    # -- choosing ----------------------------------------------------------------------------
    def _best_held(self, now: int, latest: int) -> tuple[tuple[int, int] | None, int | None]:
        """Under the lock: rate/lanes.py's best_held, after the leases that ended unused."""
        spacing = round(self._limit.spacing_ms)
        self._sends = [at for at in self._sends if at > now - spacing]
        for index in [i for i, held in self._held.items() if held.until_ms < now and not held.busy]:
            del self._held[index]  # the item already says so
        return rules.best_held(self._held, now, latest, self._sends, spacing)

    def _grant(self, index: int, send_at: int, booked: bool = False) -> int:  # under the lock
        held = self._held[index]
        held.busy = True
        if not booked:
            self._sends.append(send_at)
        self._mine.lane = index
        return max(send_at, held.ready_ms)

    def _best_claim(self, now: int, latest: int, held_at: int | None) -> tuple[int, int] | None:
        """Under the lock: a lane to claim and when it would carry this call (booked), if that
        is by `latest` and sooner than the held lanes can (by more than the write it costs);
        AFTER_THE_CLAIM if another's claim is in flight (one at a time): wait, not book later."""
        if self._idle_only and (self._held or self._claiming):
            return None  # idle-only: one lane at a time
        waiter = self.table.wanted(now, self._limit.window_ms, but=self._me)
        if self._held and waiter and rules.holds_none(self._lanes, self.table.wanted_by, now):
            return None  # a caller with no lane waits: lanes given back are its turn
        taken = self._held.keys() | self._claiming
        others = {index: lane for index, lane in self._lanes.items() if index not in taken}
        usable_by = now if self._idle_only else latest
        candidates = rules.claimable(others, now, usable_by, self._me, self._wanted(now))
        if not candidates:
            return None
        first = candidates[0]
        earliest = max(now + self.table.write_ms, self._lanes[first].free_ms)
        claim_at = rules.spaced(earliest, self._sends, round(self._limit.spacing_ms))
        if claim_at > latest or (held_at is not None and held_at <= claim_at):
            return None  # (a lane claimed for a call that is not made would go back unused)
        if self._claiming:
            return AFTER_THE_CLAIM
        self._claiming.add(first)
        self._sends.append(claim_at)
        return first, claim_at

    def _wait_for_a_lane(self, now: int, latest: int, in_flight: bool, held_at: int | None) -> None:
        """Nothing to take or claim: wait for this process's answers or read the item (others'
        lanes may come back before their leases end), or SlotTooLate if none by `latest`."""
        with self._cond:
            others = {i: lane for i, lane in self._lanes.items() if i not in self._held}
        contested = self._wanted(now)
        change = rules.soonest_claim(others, now, self._me, contested)
        early = rules.leased_by_others(others, now, self._me)
        hopeless = change is None or now >= latest or (change > latest and not early)
        if not in_flight and (self._idle_only or hopeless):
            self._say_waiting(now)
            soonest = rules.soonest_use(others, self._me, held_at, now, contested)
            raise SlotTooLate(max(0, soonest - now) / 1000.0)
        if in_flight and now >= latest:
            raise SlotTooLate(0.0)
        poll_ms = round(POLL_WINDOWS * self._limit.window_ms)
        until = min(latest, change or latest, now + poll_ms)
        # Lanes given back at a burst's end (rules.released_when_idle) are worth a look, too.
        look = in_flight and early and now - self.table.seen_ms > poll_ms
        with self._cond:  # one thread polls; the rest wait for it or for their own answers
            if self._polling or (in_flight and not look):
                self._cond.wait(timeout=max(0.001, min(WAIT_STEP_S, (until - now) / 1000.0)))
                return
            self._polling = True
        try:
            if not in_flight:
                spread = random.uniform(0, POLL_SPREAD_WINDOWS * self._limit.window_ms)
                self._sleep(min(until - now + spread, max(0, latest - now)) / 1000.0)
            self._remember(self.table.read())
            self._say_waiting(self._now_ms())
        finally:
            with self._cond:
                self._polling = False
                self._cond.notify_all()

    # -- the shared item ---------------------------------------------------------------------
    def _claim(self, index: int, now: int, send_at: int) -> tuple[bool, int | None]:
        """Lease lane `index` for this thread's call booked at `send_at`: whether it was won
        (False: somebody else was quicker, and the item came back), and when to send."""
        won, granted = False, None
        try:
            if self._now_ms() - self.table.seen_ms > FRESH_VIEW_MS:  # read, not lose a race
                self._remember(self.table.read())
            with self._cond:
                lane = self._lanes[index]
            if index not in rules.claimable({index: lane}, now, 2**62, self._me, self._wanted(now)):
                return False, None
            assumed_free = min(lane.free_ms, now) if self._idle_only else lane.free_ms
            until, free = rules.lease(now, assumed_free, self._limit, send_at)
            won, before = self.table.claim(
                index, self._me, until, free, now, max(assumed_free, now)
            )
            self._remember(before)
        finally:
            with self._cond:
                self._claiming.discard(index)
                if won:
                    old = before[index]
                    self._lanes[index] = Lane(self._me, until, free, old.parked_until_ms, 0)
                    self._held[index] = Held(until, max(now, old.free_ms))
                    granted = self._grant(index, send_at, booked=True)
                    if granted != send_at and send_at in self._sends:  # (a later free time)
                        self._sends[self._sends.index(send_at)] = granted
                elif send_at in self._sends:  # (a slow claim's booking may be pruned already)
                    self._sends.remove(send_at)
                self._cond.notify_all()
        return won, granted
