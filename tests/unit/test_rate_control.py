"""The shared budget's reaction to 429s, as pure functions of time: no DynamoDB."""

from __future__ import annotations

import pytest

from imgix_autoadder.rate.control import (
    BACKOFF,
    HOLD_MARGIN,
    HOLD_S,
    PROBE_PER_S,
    RECOVER_S,
    Throttle,
    after_429,
    interval_ms,
)

BASE = 263  # 4/s at 95%
T0 = 1_800_000_000_000


def test_without_a_429_the_base_spacing_holds():
    assert interval_ms(BASE, Throttle(), T0) == BASE


def test_a_lone_429_costs_a_few_seconds_of_rate_then_the_limit_is_back():
    throttle = after_429(BASE, Throttle(), T0, slot_ms=T0 - 50, next_ms=T0 + 500)
    assert throttle is not None and throttle.ceiling_ms == BASE
    assert interval_ms(BASE, throttle, T0) == round(BASE * (1 + BACKOFF))
    held = interval_ms(BASE, throttle, T0 + int(RECOVER_S * 1000))
    assert held == round(BASE * (1 + HOLD_MARGIN))
    back = T0 + int((RECOVER_S + HOLD_S) * 1000) + int(HOLD_MARGIN / PROBE_PER_S * 1000) + 1000
    assert interval_ms(BASE, throttle, back) == BASE
    # The rate lost, as seconds of calls at the limit: well under one call in ten seconds.
    lost_s = sum(1 - BASE / interval_ms(BASE, throttle, T0 + t * 100) for t in range(600)) / 10
    assert lost_s < 2.0


def test_calls_granted_before_a_raise_do_not_raise_it_again():
    throttle = after_429(BASE, Throttle(), T0, slot_ms=T0 - 50, next_ms=T0 + 500)
    assert throttle is not None
    assert after_429(BASE, throttle, T0 + 200, slot_ms=T0 + 263, next_ms=T0 + 800) is None


def test_429s_at_the_ceiling_climb_to_a_co_tenants_level_and_hold_there():
    """An outside user takes a third of the limit: each 429 met at or above the ceiling
    moves it up by BACKOFF, until the spacing leaves the outside user its share."""
    throttle, now, needed, raises = Throttle(), T0, BASE * 4 / 3, 0
    while interval_ms(BASE, throttle, now) < needed:  # too fast: the window is met again
        raised = after_429(BASE, throttle, now, slot_ms=now, next_ms=now)
        assert raised is not None
        throttle, now, raises = raised, now + int((RECOVER_S + 1) * 1000), raises + 1
    assert raises <= 4  # a handful of 429s to find a co-tenant's third
    assert interval_ms(BASE, throttle, now + 10_000) >= needed  # held there
    # ... and then probes back: met again lower down, the ceiling is where it was met.
    probing = now + int((RECOVER_S + HOLD_S + 2) * 1000)
    current = interval_ms(BASE, throttle, probing)
    assert current < throttle.ceiling_ms * (1 + HOLD_MARGIN)
    found = after_429(BASE, throttle, probing, slot_ms=probing, next_ms=probing)
    assert found is not None and found.ceiling_ms == current


@pytest.mark.parametrize("taken", [0.25, 0.5])
def test_after_a_co_tenant_leaves_the_limit_is_back_within_a_minute(taken: float):
    needed = BASE / (1 - taken)
    throttle = Throttle(ceiling_ms=round(needed), at_ms=T0, granted_before_ms=T0)
    assert interval_ms(BASE, throttle, T0 + 60_000) <= 1000 / (0.9 * 4)


def test_a_patient_pacer_waits_out_a_busy_schedule_instead_of_giving_up():
    """An operator's command (ops audit) has no deadline: an idle-only slot held by someone
    else, or one too far off, is waited for."""
    from imgix_autoadder.rate.pacing import Patient, SlotTooLate

    answers: list[float | Exception] = [SlotTooLate(0.2), SlotTooLate(0.01), 0.0]
    slept: list[float] = []

    class Busy:
        interval_s = 0.25

        def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        def on_time(self) -> bool:
            return True

        def throttled(self) -> None:
            pass

    assert Patient(Busy(), slept.append).acquire(None) == pytest.approx(0.25)
    assert slept == [0.2, 0.05]  # at least 50 ms between asks
    answers[:] = [SlotTooLate(0.2), SlotTooLate(0.2)]
    with pytest.raises(SlotTooLate):  # within its caller's bound only
        Patient(Busy(), slept.append).acquire(0.3)
