"""The in-process pacers and the patient wrapper (rate/pacing.py), with no AWS."""

from __future__ import annotations

import pytest


def test_a_patient_pacer_waits_out_a_busy_schedule_instead_of_giving_up():
    """An operator's command (ops audit) has no deadline: an idle-only slot held by someone
    else, or one too far off, is waited for."""
    from imgix_autoadder.rate.pacing import Patient, RateLimiter, SlotTooLate

    answers: list[float | Exception] = [SlotTooLate(0.2), SlotTooLate(0.01), 0.0]
    slept: list[float] = []

    class Busy(RateLimiter):  # unpaced, apart from the answers above
        def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    assert Patient(Busy(0), slept.append).acquire(None) == pytest.approx(0.25)
    assert slept == [0.2, 0.05]  # at least 50 ms between asks
    answers[:] = [SlotTooLate(0.2), SlotTooLate(0.2)]
    with pytest.raises(SlotTooLate):  # within its caller's bound only
        Patient(Busy(0), slept.append).acquire(0.3)
