"""The shared budget's lane rules (rate/lanes.py), with no DynamoDB: why a lane keeps the
window whatever the network does, who may claim a lane when, and how a 429 parks one."""

from __future__ import annotations

import random
from collections import deque

import pytest

from imgix_autoadder.rate.lanes import (
    GUARD_MS,
    HOLD_S,
    LATE_ANSWER_S,
    ONE_CALL_SLACK_MS,
    OWN_TURN_LEAD_MS,
    STAGGER_S,
    TURN_SPREAD_MS,
    WANTED_WINDOWS,
    Held,
    Lane,
    Limit,
    claimable,
    claimable_at,
    free_after_answer,
    holds_none,
    lease,
    park,
    released_when_idle,
    says_waiting,
    says_waiting_again_after,
    soonest_claim,
)

DEFAULT = Limit.per_second(4)
T0 = 1_800_000_000_000


def test_published_limits_become_lanes_per_window():
    assert Limit.per_second(4) == Limit(4, 1000)
    assert Limit.per_second(10) == Limit(10, 1000)
    assert Limit.per_second(10 / 60) == Limit(10, 60_000)  # refresh: 10 a minute
    assert Limit.per_second(2.5) == Limit(2, 1000)  # never more than the limit
    assert Limit.per_second(0).count == 0  # unpaced
    assert DEFAULT.spacing_ms == 250


def sliding_counts(arrivals: list[float], window_ms: float) -> int:
    """The most arrivals in any interval of the window's length (the strict reading)."""
    seen: deque[float] = deque()
    most = 0
    for at in sorted(arrivals):
        while seen and seen[0] <= at - window_ms:
            seen.popleft()
        seen.append(at)
        most = max(most, len(seen))
    return most


@pytest.mark.parametrize("seed", range(20))
def test_a_lane_keeps_the_window_whatever_the_delays(seed: int):
    """Each call of a lane is sent when the lane is free (its predecessor's answer plus a
    window), reaches imgix after a random delay (0-150 ms, a 300 ms handshake now and
    then) and is answered a little later: no interval of one window holds more arrivals
    than the limit, on the strictest reading, where spaced sends at 0.9 of it do."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    free = {lane: T0 for lane in range(DEFAULT.count)}
    for _ in range(200):
        lane = min(free, key=free.__getitem__)
        sent = free[lane]
        arrived = sent + rng.uniform(0, 150) + (300 if rng.random() < 0.05 else 0)
        answered = arrived + rng.uniform(1, 30)
        arrivals.append(arrived)
        free[lane] = free_after_answer(round(answered), DEFAULT)
    assert sliding_counts(arrivals, DEFAULT.window_ms) <= DEFAULT.count
    rate = (len(arrivals) - 1) / ((max(arrivals) - min(arrivals)) / 1000) / DEFAULT.count
    assert rate > 0.88  # one round trip lost per window, no more

    spaced = [T0 + i * 1000 / (0.9 * 4) + rng.uniform(0, 150) for i in range(200)]
    assert sliding_counts(spaced, DEFAULT.window_ms) > DEFAULT.count  # what it replaces


def test_a_lease_starts_when_the_lane_is_free_and_lapses_with_room_for_a_late_answer():
    until, free = lease(T0, T0 + 400, DEFAULT)
    assert until == T0 + 400 + DEFAULT.lease_ms
    assert free == until + LATE_ANSWER_S * 1000 + DEFAULT.window_ms + GUARD_MS
    assert lease(T0, 0, DEFAULT)[0] == T0 + DEFAULT.lease_ms  # free already: from now


def test_a_lane_is_claimable_once_nobody_leases_it_and_it_is_not_parked():
    lanes = {
        0: Lane("a", T0 + 100, T0 + 3100),  # leased by a
        1: Lane("a", T0 - 1, T0 + 2000),  # a's lease lapsed: anybody's, from its free time
        2: Lane("", 0, T0 + 500, parked_until_ms=T0 + 9000),  # parked by a 429
        3: Lane("a", 0, T0 + 700),  # released by a, free in 700 ms
    }
    later = T0 + 2000 - OWN_TURN_LEAD_MS  # b's turns on lanes 1 and 3 have come
    assert claimable(lanes, later, T0 + 5000, "b") == [3, 1]  # soonest free first
    assert claimable(lanes, later, T0 + 1000, "b") == [3]  # lane 1 is not usable in time
    # b's turn on lane 0 comes after a's lease and before the lane is free
    assert T0 + 101 <= claimable_at(lanes[0], "b") < lanes[0].free_ms
    assert soonest_claim(lanes, T0 - 1000, "b") == min(
        claimable_at(lane, "b") for lane in lanes.values()
    )
    # a held lanes 1 and 3 last: the others have until their free times to take their turn
    assert claimable(lanes, T0, T0 + 5000, "a") == []
    assert claimable(lanes, T0 + 700 - OWN_TURN_LEAD_MS, T0 + 5000, "a") == [3]
    assert soonest_claim(lanes, T0, "a") == T0 + 700 - OWN_TURN_LEAD_MS  # its own turn


def test_a_lane_given_back_early_is_claimed_by_each_waiter_at_its_own_turn_before_it_is_free():
    released = Lane("a", 0, T0 + 1000)  # a gave it back at T0; free a window later
    turns = [claimable_at(released, f"waiter-{n}") for n in range(10)]
    earliest = T0 + 1000 - OWN_TURN_LEAD_MS - TURN_SPREAD_MS
    assert all(earliest <= turn <= T0 + 1000 - OWN_TURN_LEAD_MS for turn in turns)
    assert len(set(turns)) == len(turns)  # one after another, not all at once
    # Its last holder's turn comes after every other's; a lane free already is anybody's.
    assert claimable_at(released, "a") >= max(turns)
    assert claimable_at(Lane("a", 0, T0 - 5000), "b") <= T0
    # A waiter sleeps until its turn (soonest_claim), and reads the item before it claims.
    assert soonest_claim({0: released}, T0, "waiter-0") == turns[0]
    assert claimable({0: released}, turns[0], 2**62, "waiter-0") == [0]
    assert claimable({0: released}, turns[0] - 1, 2**62, "waiter-0") == []


def test_a_per_minute_limit_leases_a_lane_for_one_call():
    refresh = Limit.per_second(10 / 60)
    assert refresh.one_call_leases and not DEFAULT.one_call_leases
    until, free = lease(T0, T0 - 5000, refresh, send_at_ms=T0 + 6000)
    assert until == T0 + 6000 + ONE_CALL_SLACK_MS  # the planned send, and a little
    assert free == until + LATE_ANSWER_S * 1000 + refresh.window_ms + GUARD_MS
    assert (free - (T0 + 6000)) / refresh.window_ms < 1.02  # 1.3% of the window over an answer's
    assert lease(T0, T0 + 500, DEFAULT, send_at_ms=T0 + 6000)[0] == T0 + 500 + DEFAULT.lease_ms


def test_callers_arriving_together_ask_for_different_lanes_first():
    lanes = {index: Lane() for index in range(4)}
    firsts = {claimable(lanes, T0, T0, f"caller-{n}")[0] for n in range(12)}
    assert len(firsts) > 1


def test_a_429_parks_its_lane_then_probes_it_again():
    lanes = {index: Lane("me", T0 + 3000, T0 + 6000) for index in range(4)}
    parked = park(lanes, 1, T0, DEFAULT)
    assert parked is not None
    assert parked.parked_until_ms == T0 + HOLD_S * 1000 and parked.holder == ""
    assert parked.free_ms == free_after_answer(T0, DEFAULT)
    lanes[1] = parked
    # A second 429 in the same window is the same outside user: nothing more is parked.
    assert park(lanes, 2, T0 + 900, DEFAULT) is None
    # Later, a second lane's worth: parked too, and it comes back after the first.
    second = park(lanes, 2, T0 + 5000, DEFAULT)
    assert second is not None
    assert second.parked_until_ms == T0 + HOLD_S * 1000 + STAGGER_S * 1000
    lanes[2] = second
    probing = claimable(lanes, T0 + HOLD_S * 1000 + 1, 2**62, "me")
    assert 1 in probing and 2 not in probing  # one probe at a time


def test_an_ended_invocation_keeps_its_leases_unless_somebody_waits():
    renewed_ms = DEFAULT.window_ms + GUARD_MS + DEFAULT.lease_ms  # a lease renewed just now
    held = {
        0: Held(T0 + 2000, T0 + 900),  # a default-class lease with 2 s to run
        1: Held(T0 + renewed_ms, T0 + DEFAULT.window_ms + GUARD_MS),
        2: Held(T0 + 2000, T0 + 900, busy=True),  # (never: a call still out)
    }
    lanes = {0: Lane("me", T0 + 2000, 0), 1: Lane("me", T0 + renewed_ms, 0)}
    assert released_when_idle(held, lambda: lanes, "me", T0, lambda now: False) == []
    assert released_when_idle(held, lambda: lanes, "me", T0, lambda now: True) == [0, 1]
    # A kept lease holds a lane from a newcomer within its pacing wait (10 s by default).
    assert renewed_ms + LATE_ANSWER_S * 1000 + DEFAULT.window_ms < 10_000


def test_an_ended_invocation_whose_queue_is_drained_gives_its_lanes_to_others_still_working():
    """The burst's tail: environments that finished would keep their leases (no next batch
    comes to use them) while the others' last batches run on a few lanes."""
    held = {0: Held(T0 + 2000, T0 + 900), 1: Held(T0 + 2000, T0 + 900)}
    mine = {0: Lane("me", T0 + 2000, 0), 1: Lane("me", T0 + 2000, 0)}
    working = {**mine, 2: Lane("other", T0 + 1500, 0)}
    finished = {**mine, 2: Lane("other", T0 - 1, 0)}  # the other's lease ran out
    asked: list[int] = []

    def drained() -> bool:
        asked.append(1)
        return True

    def nobody_waits(now: int) -> bool:
        return False

    assert released_when_idle(held, lambda: working, "me", T0, nobody_waits, drained) == [0, 1]
    assert released_when_idle(held, lambda: working, "me", T0, nobody_waits, lambda: False) == []
    assert asked == [1]
    # Alone on the account, or with nothing idle, it keeps them, and SQS is not asked.
    assert released_when_idle(held, lambda: finished, "me", T0, nobody_waits, drained) == []
    busy = {index: Held(lane.until_ms, lane.ready_ms, busy=True) for index, lane in held.items()}
    assert released_when_idle(busy, lambda: working, "me", T0, nobody_waits, drained) == []
    assert asked == [1]


def test_a_caller_with_no_lane_says_it_waits_only_on_others_leases_of_windows():
    others = {0: Lane("other", T0 + 1000, 0)}
    assert says_waiting(others, T0, "me", DEFAULT)
    assert not says_waiting({0: Lane("other", T0 - 1, 0)}, T0, "me", DEFAULT)
    assert not says_waiting({0: Lane("me", T0 + 1000, 0)}, T0, "me", DEFAULT)
    assert not says_waiting(others, T0, "me", Limit.per_second(10 / 60))  # one-call leases


def test_waiters_say_so_again_at_different_ages_of_the_last_word_and_name_themselves():
    ages = {says_waiting_again_after(f"waiter-{n}", DEFAULT) for n in range(10)}
    assert all(2 * DEFAULT.window_ms <= age < 3 * DEFAULT.window_ms for age in ages)
    assert max(ages) < WANTED_WINDOWS * DEFAULT.window_ms  # said again before it goes stale
    assert len(ages) > 5  # the first to write is read by the others before their turn
    lanes = {0: Lane("a", T0 + 2000, T0 + 3505), 1: Lane("b", T0 - 10, T0 + 1495)}
    assert not holds_none(lanes, "a", T0)  # a was served: it waits no more
    assert holds_none(lanes, "b", T0)  # b's lease is over
    assert not holds_none(lanes, "", T0)  # nobody said it waits
