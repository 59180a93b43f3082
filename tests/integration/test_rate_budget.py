"""The shared rate budget against moto's DynamoDB, on a shared fake clock: slots are
strictly spaced across every caller, nothing is held while idle, the backfill only takes
idle slots, and a 429 slows every caller down and fades."""

from __future__ import annotations

import itertools
from typing import Any

import boto3
import pytest

from imgix_autoadder.rate.budget import SPACING_MARGIN, SharedRateLimiter
from imgix_autoadder.rate.control import BACKOFF, HOLD_MARGIN, HOLD_S, RECOVER_S
from imgix_autoadder.rate.pacing import SlotTooLate
from localdev.provision import RATE_BUDGET_TABLE, create_rate_budget_table


class Clock:
    """One wall clock for every caller; sleeping moves it on."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb")
    create_rate_budget_table(client)
    return client


def limiter(dynamodb: Any, clock: Clock, **kw: Any) -> SharedRateLimiter:
    options = {"account": "acct", "limit_class": "default", "per_second": 4.0, **kw}
    return SharedRateLimiter(dynamodb, RATE_BUDGET_TABLE, clock=clock, sleep=clock.sleep, **options)


def test_one_caller_is_spaced_at_the_limit_with_a_margin(dynamodb: Any):
    clock = Clock()
    budget = limiter(dynamodb, clock)
    starts = []
    for _ in range(5):
        budget.acquire()
        starts.append(clock.now)
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(starts)}
    assert gaps == {round(1 / (4 * SPACING_MARGIN), 3)}
    assert budget.aws_calls == 5  # one conditional UpdateItem per slot, uncontended


def test_callers_share_one_schedule_and_idle_time_is_not_held(dynamodb: Any):
    clock = Clock()
    first, second = limiter(dynamodb, clock), limiter(dynamodb, clock)
    first.acquire()
    # The second caller has not seen the schedule: it loses the race, reads, queues behind.
    waited = second.acquire()
    assert waited == pytest.approx(first.interval_s, abs=0.002)
    clock.now += 60  # idle: nobody holds future slots, so the next caller goes at once
    assert first.acquire() == 0.0


def test_a_slot_further_than_the_caller_can_wait_is_not_taken(dynamodb: Any):
    clock = Clock()
    budget = limiter(dynamodb, clock, per_second=0.1)  # one slot per ~10.5 s
    budget.acquire()
    with pytest.raises(SlotTooLate) as late:
        budget.acquire(max_wait_s=5)
    assert late.value.wait_s > 5
    item = dynamodb.get_item(TableName=RATE_BUDGET_TABLE, Key={"id": {"S": "acct#default"}})
    assert int(item["Item"]["next_ms"]["N"]) == int((clock.now + budget.interval_s) * 1000)


def test_the_backfill_takes_only_idle_slots(dynamodb: Any):
    clock = Clock()
    indexer = limiter(dynamodb, clock)
    backfill = limiter(dynamodb, clock, idle_only=True)
    indexer.acquire(), indexer.acquire()  # the schedule is booked into the future
    clock.now -= indexer.interval_s  # (the second caller slept to its slot; step back)
    with pytest.raises(SlotTooLate):
        backfill.acquire()
    clock.now += 5
    assert backfill.acquire() == 0.0


def test_the_backfill_waits_for_a_slot_that_only_its_own_call_holds(dynamodb: Any):
    """A cold backfill environment reads its Source (one slot), then adds its first object
    at once: nobody else wants the next slot, so it waits for it instead of failing."""
    clock = Clock()
    backfill = limiter(dynamodb, clock, idle_only=True)
    assert backfill.acquire() == 0.0  # GET sources/:id at cold start
    clock.now += 0.05
    waited = backfill.acquire()  # the first add, 50 ms later
    assert waited == 0.0 and clock.slept == [pytest.approx(backfill.interval_s - 0.05, abs=0.003)]
    # Another caller queued behind it meanwhile: the backfill yields again.
    indexer = limiter(dynamodb, clock)
    indexer.acquire()
    with pytest.raises(SlotTooLate):
        backfill.acquire()


def gap_after(budget: SharedRateLimiter, clock: Clock) -> float:
    """The spacing of two back-to-back reservations of a busy schedule."""
    budget.acquire()
    start = clock.now
    budget.acquire()
    return clock.now - start


def test_a_429_slows_every_caller_briefly_and_the_limit_comes_back(dynamodb: Any):
    clock = Clock()
    one, other = limiter(dynamodb, clock), limiter(dynamodb, clock)
    base = one.interval_s
    one.acquire()
    one.throttled()  # the account's window was met: every caller backs off a little ...
    other.acquire()  # (books the slot it learns the new spacing from)
    assert gap_after(other, clock) == pytest.approx(base * (1 + BACKOFF), rel=0.05)
    one.throttled()  # ... a 429 for a call granted before the raise changes nothing
    clock.now += RECOVER_S + 1  # ... then holds just under the capacity found ...
    assert gap_after(other, clock) == pytest.approx(base * (1 + HOLD_MARGIN), rel=0.02)
    clock.now += HOLD_S + 5  # ... and probes back to the limit within a minute
    assert gap_after(other, clock) == pytest.approx(base, abs=0.002)
    assert one.aws_calls + other.aws_calls <= 14  # 429s cost a read and a write each


def test_a_call_that_opens_a_connection_keeps_the_next_slot_further(dynamodb: Any):
    """A new connection's handshake makes a call reach imgix late; the on-time call after
    it must still arrive a full interval later, or the window meets five in one second."""
    clock = Clock()
    budget = limiter(dynamodb, clock)
    budget.acquire(late_s=0.3)
    start = clock.now
    budget.acquire()
    assert clock.now - start == pytest.approx(budget.interval_s + 0.3, abs=0.002)


def test_accounts_and_classes_have_their_own_schedules(dynamodb: Any):
    clock = Clock()
    limiter(dynamodb, clock).acquire()
    assert limiter(dynamodb, clock, account="other").acquire() == 0.0
    assert limiter(dynamodb, clock, limit_class="purge", per_second=10).acquire() == 0.0


def test_an_unpaced_class_makes_no_aws_call(dynamodb: Any):
    budget = limiter(dynamodb, Clock(), per_second=0)
    assert budget.acquire() == 0.0 and budget.aws_calls == 0
