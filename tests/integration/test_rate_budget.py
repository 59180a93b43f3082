"""The shared rate budget against moto's DynamoDB, on a shared fake clock: a lane's next
call waits for its answer plus a window, processes lease lanes and give them back, a lease
costs writes and the calls in it none, the backfill takes only free lanes, and a 429 parks
one lane for everyone."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import boto3
import pytest

from imgix_autoadder.rate.budget import SharedRateLimiter
from imgix_autoadder.rate.lanes import (
    GUARD_MS,
    HOLD_S,
    LATE_ANSWER_S,
    LEASE_WINDOWS,
    ONE_CALL_SLACK_MS,
    POLL_SPREAD_WINDOWS,
    POLL_WINDOWS,
)
from imgix_autoadder.rate.pacing import SlotTooLate
from localdev.provision import RATE_BUDGET_TABLE, create_rate_budget_table

ANSWER_S = 0.02  # imgix's answer, 20 ms after the send


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


def call(budget: SharedRateLimiter, clock: Clock, **kw: Any) -> float:
    """One imgix call through the budget, as the transport makes it; returns its send time."""
    budget.acquire(**kw)
    assert budget.on_time()
    sent = clock.now
    clock.now += ANSWER_S
    budget.answered()
    return sent


def call_on_the_wall_clock(budget: SharedRateLimiter) -> float:
    """`call` for threads on the real clock: a 10-s pacing wait, an answer ANSWER_S later."""
    budget.acquire(max_wait_s=10.0)
    assert budget.on_time()
    sent = time.time()
    time.sleep(ANSWER_S)
    budget.answered()
    return sent


def lanes_in_item(dynamodb: Any, account: str = "acct") -> dict[str, str]:
    item = dynamodb.get_item(TableName=RATE_BUDGET_TABLE, Key={"id": {"S": f"{account}#default"}})
    return {name: value.get("S", value.get("N", "")) for name, value in item["Item"].items()}


def test_a_lane_waits_for_its_answer_plus_a_window_and_a_lease_costs_one_write(dynamodb: Any):
    clock = Clock()
    budget = limiter(dynamodb, clock)
    sends = [call(budget, clock) for _ in range(8)]
    # Four lanes, spread a quarter of a window apart in one process ...
    assert [round(b - a, 3) for a, b in itertools.pairwise(sends[:4])] == [0.25] * 3
    # ... and each lane's next call one window after its answer: never five in a second.
    for first, fifth in zip(sends, sends[4:], strict=False):
        assert fifth - first >= 1.0 + ANSWER_S + GUARD_MS / 1000 - 1e-6
    # One conditional write per lane leased, none per call (and at most a read before each
    # claim, on a view of the item older than FRESH_VIEW_MS: a read is cheaper than a lost race).
    assert budget.table.writes_by == {"claim": 4}
    assert budget.table.calls - budget.table.writes <= 4


def test_a_claim_asks_whether_the_lane_is_free_now_not_at_its_call_s_later_send(dynamodb: Any):
    """A claim for a call booked later (the process spreads its sends) is judged at the
    claim's own time: judged at the send's, it would overtake a lease or a park that
    ends in between."""
    conditions: list[dict[str, Any]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

        def update_item(self, **request: Any) -> Any:
            if "ConditionExpression" in request:
                conditions.append(request["ExpressionAttributeValues"])
            return dynamodb.update_item(**request)

    clock = Clock()
    budget = limiter(Recording(), clock)
    claimed_at = int(clock.now * 1000)
    budget.acquire()
    budget.acquire()  # a second lane, for a send a quarter of a window later
    assert clock.now * 1000 == pytest.approx(claimed_at + 250)
    assert [int(values[":now"]["N"]) for values in conditions] == [claimed_at, claimed_at]


def test_callers_share_the_lanes_and_an_idle_process_gives_them_back(dynamodb: Any):
    clock = Clock()
    first, second = limiter(dynamodb, clock), limiter(dynamodb, clock)
    sends = [call(first, clock) for _ in range(4)]
    with pytest.raises(SlotTooLate):  # every lane is leased to the first process
        second.acquire(max_wait_s=0.5)
    first.idle()  # its invocation ended: the lanes go back, with their exact free times
    asked = clock.now
    second.acquire()
    # The soonest lane, one window after the answer to the first process's first call,
    # found at the second's next look at the item (it polls within half a window).
    free = sends[0] + ANSWER_S + 1.0 + GUARD_MS / 1000
    assert free <= clock.now <= max(free, asked) + POLL_WINDOWS + POLL_SPREAD_WINDOWS
    assert second.on_time()


def test_a_lane_further_than_the_caller_can_wait_is_not_taken(dynamodb: Any):
    clock = Clock()
    first, second = limiter(dynamodb, clock), limiter(dynamodb, clock)
    for _ in range(4):
        call(first, clock)
    held_before = lanes_in_item(dynamodb)
    asked = clock.now
    with pytest.raises(SlotTooLate) as late:
        second.acquire(max_wait_s=1.0)
    assert late.value.wait_s > 1.0  # the first process's leases run for seconds yet
    # It waited its second (a holder may give a lane back early), said it waits ...
    assert clock.now - asked == pytest.approx(1.0, abs=0.01)
    after = lanes_in_item(dynamodb)
    assert asked * 1000 <= int(after.pop("w")) <= clock.now * 1000
    assert after.pop("wb") == second._me
    after.pop("expires_at"), held_before.pop("expires_at")
    assert after == held_before  # ... and claimed nothing for the refused call


def test_the_backfill_takes_only_free_lanes_one_at_a_time(dynamodb: Any):
    clock = Clock()
    indexer = limiter(dynamodb, clock)
    backfill = limiter(dynamodb, clock, idle_only=True)
    for _ in range(4):
        indexer.acquire()  # four calls in flight: every lane taken
    with pytest.raises(SlotTooLate):
        backfill.acquire()
    clock.now += LEASE_WINDOWS + LATE_ANSWER_S + 2  # the indexer froze; its leases lapsed
    sent = call(backfill, clock)
    item = lanes_in_item(dynamodb)
    backfill_lane = next(k for k, v in item.items() if k.startswith("h") and v == backfill._me)
    assert item[f"u{backfill_lane[1:]}"] == "0"  # released at once after its one call
    assert sent == pytest.approx(clock.now - ANSWER_S)


def test_a_cold_backfill_reads_its_source_and_adds_without_failing(dynamodb: Any):
    """A cold backfill environment reads its Source, then adds its first object at once:
    both are its own, nobody else wants a lane, so neither is refused."""
    clock = Clock()
    backfill = limiter(dynamodb, clock, idle_only=True)
    call(backfill, clock)  # GET sources/:id at cold start
    clock.now += 0.05
    assert backfill.acquire() == pytest.approx(0.25 - 0.05 - ANSWER_S, abs=0.003)


def test_a_429_parks_one_lane_for_every_caller_until_it_is_probed(dynamodb: Any):
    clock = Clock()
    one, other = limiter(dynamodb, clock), limiter(dynamodb, clock)
    for _ in range(3):
        call(one, clock)
    one.acquire()
    assert one.on_time()
    clock.now += ANSWER_S
    one.answered()
    one.throttled()  # an outside user filled the window: this lane is parked ...
    one.idle()
    clock.now += LEASE_WINDOWS + LATE_ANSWER_S + 2  # (every lease and allowance over)
    for _ in range(3):
        call(other, clock)
    with pytest.raises(SlotTooLate):  # ... for everyone: three lanes are left
        other.acquire(max_wait_s=0.5)
    other.idle()
    clock.now += HOLD_S  # then it comes back, and its first call is the probe
    for _ in range(4):
        call(other, clock)


def test_a_frozen_holder_s_lane_is_free_after_its_lease_and_a_late_answer(dynamodb: Any):
    clock = Clock()
    frozen, other = (
        limiter(dynamodb, clock, per_second=1.0),
        limiter(dynamodb, clock, per_second=1.0),
    )
    frozen.acquire()  # its call was sent, then the environment froze: no answer, no idle
    leased_at = clock.now
    waited = other.acquire()
    lease_end = leased_at + LEASE_WINDOWS * 1.0
    assert clock.now >= lease_end + LATE_ANSWER_S + 1.0  # its last call's answer had room
    assert waited == pytest.approx(clock.now - leased_at, abs=0.01)


def test_a_call_not_sent_within_its_lease_gives_the_lane_back(dynamodb: Any):
    clock = Clock()
    budget = limiter(dynamodb, clock)
    budget.acquire()
    clock.now += LEASE_WINDOWS + 1  # held up between its grant and its send
    assert not budget.on_time()
    call(budget, clock)  # a fresh lease


def test_accounts_and_classes_have_their_own_lanes(dynamodb: Any):
    clock = Clock()
    for _ in range(4):
        call(limiter(dynamodb, clock), clock)
    assert limiter(dynamodb, clock, account="other").acquire() == 0.0
    assert limiter(dynamodb, clock, limit_class="purge", per_second=10).acquire() == 0.0


def test_an_unpaced_class_makes_no_aws_call(dynamodb: Any):
    budget = limiter(dynamodb, Clock(), per_second=0)
    assert budget.acquire() == 0.0 and budget.table.calls == 0


def test_the_end_of_an_invocation_gives_the_lanes_back_to_a_waiting_caller(dynamodb: Any):
    """A Lambda environment is frozen when its handler returns: if a caller waits for a
    lane, every handler's decorator releases the lanes then, with their exact free times,
    instead of letting them lapse; if nobody does, the next invocation goes on with them."""
    from aws_lambda_powertools import Metrics

    from imgix_autoadder.core import invocation
    from imgix_autoadder.core.call_tally import imgix_calls_counted

    clock = Clock()
    budget = limiter(dynamodb, clock)
    invocation.at_end(budget.idle)

    @imgix_calls_counted(Metrics(namespace="test"))
    def handler() -> list[float]:
        return [call(budget, clock) for _ in range(4)]  # every lane held

    handler()
    kept = lanes_in_item(dynamodb)
    assert all(kept[name] != "0" for name in kept if name.startswith("u"))  # nobody waited
    clock.now += 1.5
    with pytest.raises(SlotTooLate):  # another caller finds no lane, and says so
        limiter(dynamodb, clock).acquire(max_wait_s=0.1)
    sends = handler()
    item = lanes_in_item(dynamodb)
    ours = [name[1:] for name, value in item.items() if name.startswith("h") and value]
    assert len(ours) == 4 and all(item[f"u{lane}"] == "0" for lane in ours)
    frees = sorted(int(item[f"f{lane}"]) for lane in ours)
    assert frees == [int((sent + ANSWER_S) * 1000) + 1000 + GUARD_MS for sent in sends]


def test_a_refresh_lane_is_leased_for_its_one_call_at_one_write_a_call(dynamodb: Any):
    """Refresh's limit is 10 a minute: a lease of windows would hold a lane for minutes,
    so each call leases one lane for itself (one write), and nothing gives it back."""
    clock = Clock()
    refresh = limiter(dynamodb, clock, limit_class="refresh", per_second=10 / 60)
    first = call(refresh, clock)
    # The process's next send is 6 s away (its sends are spread window/N apart): a caller
    # that cannot wait so long claims no lane for a call it will not make.
    with pytest.raises(SlotTooLate):
        refresh.acquire(max_wait_s=1.0)
    sends = [first] + [call(refresh, clock) for _ in range(9)]
    assert [round(b - a, 3) for a, b in itertools.pairwise(sends)] == [6.0] * 9
    refresh.idle()
    assert refresh.table.writes_by == {"claim": 10}  # no release, renewal or unused claim
    # The first lane is anybody's a window and a late answer's room after its one call.
    other = limiter(dynamodb, clock, limit_class="refresh", per_second=10 / 60)
    other.acquire()
    one_call_lease_end = first + ONE_CALL_SLACK_MS / 1000
    assert clock.now == pytest.approx(one_call_lease_end + LATE_ANSWER_S + 60 + GUARD_MS / 1000)
    assert other.table.writes_by == {"claim": 1}


def test_threads_of_several_processes_on_the_real_clock_never_put_five_sends_in_a_second(
    dynamodb: Any,
):
    """Two processes with four threads each, on the wall clock and moto: every claim,
    booking and hand-over between threads and processes runs for real. A lane's next send
    waits for the previous answer plus a window, so no second holds five sends."""
    sends: list[float] = []
    failures: list[BaseException] = []

    def invocation(budget: SharedRateLimiter) -> None:  # four threads, two calls each
        def work() -> None:
            try:
                for _ in range(2):
                    sends.append(call_on_the_wall_clock(budget))
            except BaseException as exc:  # (a thread's failure fails the test)
                failures.append(exc)

        workers = [threading.Thread(target=work) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        budget.idle()  # the invocation's end

    processes = [
        threading.Thread(
            target=invocation,
            args=(SharedRateLimiter(dynamodb, RATE_BUDGET_TABLE, "acct", "default", 4.0),),
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert not failures
    sends.sort()
    assert len(sends) == 16
    assert all(b - a >= 1.0 for a, b in zip(sends, sends[4:], strict=False))


def test_a_caller_holding_a_lane_leaves_the_lanes_given_back_to_one_that_holds_none(
    dynamodb: Any,
):
    clock = Clock()
    holder, first, second = (limiter(dynamodb, clock) for _ in range(3))
    for _ in range(4):
        call(holder, clock)  # every lane held
    with pytest.raises(SlotTooLate):
        first.acquire(max_wait_s=0.1)  # says it waits
    clock.now += 3.1
    with pytest.raises(SlotTooLate):
        second.acquire(max_wait_s=0.1)  # says so too, once the first's word is 3 windows old
    holder.idle()  # somebody waits: the four lanes go back
    call(first, clock)  # first takes one ...
    with pytest.raises(SlotTooLate):  # ... and, while second waits, not another
        first.acquire(max_wait_s=0.5)
    assert first.table.writes_by["claim"] == 1
    call(second, clock)
    assert second.table.writes_by["claim"] == 1


def test_an_invocation_that_ends_with_nobody_waiting_keeps_even_a_just_renewed_lease(
    dynamodb: Any,
):
    """Giving a lane back with nobody waiting costs a write, and the next invocation a claim
    before its first call."""
    clock = Clock()
    budget = limiter(dynamodb, clock, per_second=1.0)
    for _ in range(LEASE_WINDOWS):  # the lease's last call renews it, for a lease from now
        call(budget, clock)
    last_answer = clock.now
    budget.idle()
    assert budget.table.writes_by == {"claim": 1, "renew": 1}
    # The next invocation sends on the kept lane as soon as it is free, with no claim.
    assert call(budget, clock) == pytest.approx(last_answer + 1.0 + GUARD_MS / 1000)
    assert budget.table.writes_by == {"claim": 1, "renew": 1}


def test_a_thread_waits_for_its_process_s_claim_in_flight_rather_than_take_a_later_held_slot(
    dynamodb: Any,
):
    """One claim at a time per process: a call that a claim would carry sooner than the
    lanes the process holds waits for the claim in flight, then claims a lane of its own."""
    entered, proceed = threading.Event(), threading.Event()
    gate = {"armed": False}

    class Gated:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

        def update_item(self, **request: Any) -> Any:
            claim = "attribute_not_exists(#u)" in request.get("ConditionExpression", "")
            if gate["armed"] and claim:
                gate["armed"] = False
                entered.set()
                proceed.wait(timeout=10)
            return dynamodb.update_item(**request)

    clock = Clock()
    budget = limiter(Gated(), clock, per_second=3.0)
    first_send = call(budget, clock)  # one lane held, free again a window after its answer
    first_lane = budget._mine.last
    gate["armed"] = True
    lanes: dict[str, int] = {}
    sends: dict[str, float] = {}

    def acquire(name: str) -> None:
        budget.acquire()
        lanes[name], sends[name] = budget._mine.lane, clock.now

    claiming = threading.Thread(target=acquire, args=("claiming",))
    claiming.start()
    assert entered.wait(timeout=10)  # its claim is in flight
    waiting = threading.Thread(target=acquire, args=("waiting",))
    waiting.start()
    time.sleep(0.2)  # (the waiting thread looks, and waits for the claim)
    proceed.set()
    claiming.join(timeout=10)
    waiting.join(timeout=10)
    assert len({first_lane, lanes["claiming"], lanes["waiting"]}) == 3
    assert sends["waiting"] < first_send + ANSWER_S + 1.0  # before the held lane is free
    assert budget.table.writes_by == {"claim": 3}


def test_an_invocation_that_ends_with_its_queue_drained_gives_its_lanes_to_those_still_working(
    dynamodb: Any,
):
    """A burst's tail: an environment whose batch was the last in the queue gives its
    idle lanes back while another still works; alone, or with more to come, it keeps them."""
    clock = Clock()
    mine, other = limiter(dynamodb, clock), limiter(dynamodb, clock)
    call(other, clock)  # another environment still works on a lane of its own
    for _ in range(3):
        call(mine, clock)
    asked: list[bool] = []

    def queue(drained: bool) -> Any:
        return lambda: asked.append(drained) or drained

    mine.idle(queue(drained=False))  # more messages wait: the next batch goes on with them
    assert asked == [False] and "release" not in mine.table.writes_by
    mine.idle(queue(drained=True))
    assert asked == [False, True] and mine.table.writes_by["release"] == 3
    item = lanes_in_item(dynamodb)
    leased = [name for name, value in item.items() if name.startswith("u") and value != "0"]
    assert len(leased) == 1  # only the other's lane is still leased
    # The other, which takes them, sends its next calls a quarter window apart again.
    sends = [call(other, clock) for _ in range(4)]
    assert [round(b - a, 3) for a, b in itertools.pairwise(sends)] == [0.25] * 3


def test_an_invocation_that_ends_alone_on_the_account_keeps_its_lanes_without_asking_sqs(
    dynamodb: Any,
):
    clock = Clock()
    alone = limiter(dynamodb, clock)
    for _ in range(3):
        call(alone, clock)
    asked: list[int] = []
    alone.idle(lambda: asked.append(1) or True)
    assert asked == [] and "release" not in alone.table.writes_by


@pytest.mark.long(3)
def test_a_process_waiting_on_its_own_answers_takes_lanes_given_back_before_their_leases_end(
    dynamodb: Any,
):
    """On the wall clock: while its threads wait on its own lanes' answers, a process still
    reads the item (every half window while others lease lanes), so the lanes an environment
    gives back at a burst's end carry its calls before the old leases would have run out."""
    finished, working = (
        SharedRateLimiter(dynamodb, RATE_BUDGET_TABLE, "acct", "default", 4.0) for _ in range(2)
    )
    for _ in range(2):  # the finished environment's last batch, on two lanes
        finished.acquire()
        assert finished.on_time()
        finished.answered()
    start = time.time()
    sends: list[float] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            while time.time() - start < 2.6:
                sends.append(call_on_the_wall_clock(working))
        except BaseException as exc:  # (a thread's failure fails the test)
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(10)]  # a batch of ten
    for worker in workers:
        worker.start()
    time.sleep(0.3)
    finished.idle(lambda: True)  # its queue is drained: the two lanes go back
    time.sleep(max(0.0, start + 2.5 - time.time()))
    # By now it has claimed them (by 1.5 s, reading the item every half window), long before
    # its own leases' end would have made it read the item (3 s) or the old leases lapsed.
    claims_by_then = working.table.writes_by["claim"]
    for worker in workers:
        worker.join(timeout=30)
    assert not failures
    assert claims_by_then == 4  # its own two, then the two given back
    sends.sort()
    assert all(b - a >= 1.0 for a, b in zip(sends, sends[4:], strict=False))
