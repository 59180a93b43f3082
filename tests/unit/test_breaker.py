"""The stack's breaker (rate/breaker.py): its rules, and a Breaker over the in-process store
driven by a clock the test holds."""

from __future__ import annotations

import pytest

from imgix_autoadder.rate.breaker import (
    BASE_OPEN_S,
    MAX_OPEN_S,
    OUTAGE_THRESHOLD,
    OUTAGE_WINDOW_S,
    PROBE_S,
    PROBE_WAIT_S,
    VIEW_OPEN_S,
    Breaker,
    BreakerOpen,
    BreakerState,
    LocalBreakerStore,
    admission,
    opened,
)

NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


# -- rules ---------------------------------------------------------------------------------


def test_a_closed_breaker_admits_whatever_the_count():
    assert admission(BreakerState(), NOW) is None
    assert admission(BreakerState(failures=OUTAGE_THRESHOLD - 1), NOW) is None


def test_an_open_breaker_says_how_long_to_wait():
    state = BreakerState(failures=9, open_until=NOW + 12.5, open_s=30)
    assert admission(state, NOW) == pytest.approx(12.5)


def test_a_half_open_breaker_admits_one_probe_and_holds_the_rest_briefly():
    half_open = BreakerState(failures=9, open_until=NOW - 1, open_s=30)
    assert admission(half_open, NOW) is None  # may try to become the probe
    probing = BreakerState(failures=9, open_until=NOW - 1, open_s=30, probe_until=NOW + 20)
    assert admission(probing, NOW) == PROBE_WAIT_S


def test_the_threshold_opens_the_breaker_for_the_base_time():
    assert opened(BreakerState(failures=OUTAGE_THRESHOLD - 1), NOW) is None
    state = opened(BreakerState(failures=OUTAGE_THRESHOLD), NOW)
    assert state is not None
    assert (state.open_until, state.open_s) == (NOW + BASE_OPEN_S, BASE_OPEN_S)


def test_a_failed_probe_reopens_for_twice_as_long_up_to_sqs_longest_delay():
    lengths, open_s = [], 0.0
    for _ in range(8):
        state = opened(BreakerState(failures=50, open_until=NOW - 1, open_s=open_s), NOW)
        assert state is not None and state.probe_until == 0.0
        open_s = state.open_s
        lengths.append(open_s)
    assert lengths == [30, 60, 120, 240, 480, 900, 900, 900]
    assert max(lengths) == MAX_OPEN_S


def test_an_outage_answer_while_open_does_not_extend_the_opening():
    assert opened(BreakerState(failures=50, open_until=NOW + 5, open_s=30), NOW) is None


# -- a Breaker over the process's own store ------------------------------------------------


def test_the_breaker_opens_after_the_threshold_and_stops_every_caller():
    clock = Clock()
    breaker = Breaker(LocalBreakerStore(), clock)
    waits = [breaker.outage() for _ in range(OUTAGE_THRESHOLD)]
    assert waits[:-1] == [None] * (OUTAGE_THRESHOLD - 1)
    assert waits[-1] == pytest.approx(BASE_OPEN_S)
    with pytest.raises(BreakerOpen) as shut:
        breaker.admit()
    assert shut.value.wait_s == pytest.approx(BASE_OPEN_S)


def test_an_answer_between_outages_starts_the_count_again():
    breaker = Breaker(LocalBreakerStore(), Clock())
    for _ in range(3):
        for _ in range(OUTAGE_THRESHOLD - 1):
            assert breaker.outage() is None
        breaker.answered()
    assert breaker.admit() is False  # never opened: an ordinary call, not a probe


def half_open_pair() -> tuple[Clock, Breaker, Breaker]:
    """Two environments sharing one store; the first opened it, and the opening is over."""
    clock, store = Clock(), LocalBreakerStore()
    first, second = Breaker(store, clock), Breaker(store, clock)
    for _ in range(OUTAGE_THRESHOLD):
        first.outage()
    clock.now += BASE_OPEN_S + 0.1
    return clock, first, second


def test_one_probe_at_a_time_then_an_answer_closes_it_for_everyone():
    clock, first, second = half_open_pair()
    assert first.admit() is True  # the probe
    with pytest.raises(BreakerOpen) as held:
        second.admit()
    assert held.value.wait_s == PROBE_WAIT_S
    first.answered()
    clock.now += VIEW_OPEN_S  # the other environment reads the shared state again
    assert second.admit() is False


def test_a_failed_probe_reopens_for_longer():
    clock = Clock()
    breaker = Breaker(LocalBreakerStore(), clock)
    for _ in range(OUTAGE_THRESHOLD):
        breaker.outage()
    clock.now += BASE_OPEN_S + 0.1
    breaker.admit()
    assert breaker.outage() == pytest.approx(2 * BASE_OPEN_S)


def test_a_probe_that_never_reports_frees_the_breaker_after_its_time():
    clock, lost, other = half_open_pair()
    lost.admit()  # ... and its environment is gone
    clock.now += PROBE_S + 0.1
    other.admit()  # the next probe


def test_outage_answers_far_apart_are_not_in_a_row():
    """An environment that saw only successes may not have set the shared count back: a
    quiet OUTAGE_WINDOW_S does."""
    clock = Clock()
    breaker = Breaker(LocalBreakerStore(), clock)
    for _ in range(3 * OUTAGE_THRESHOLD):
        assert breaker.outage() is None
        clock.now += OUTAGE_WINDOW_S + 1
    breaker.admit()
