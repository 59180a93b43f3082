"""How fast the shared budget may go, after what imgix's 429s said: pure functions.

The budget spaces slots at `base_ms` (the published limit x SPACING_MARGIN). A 429 despite
that spacing means the account's window held more than the budget granted: either the
stack's own calls arrived clumped (a slow first request on a new connection, network
jitter), or something outside the budget uses the account (another application, a person
in the dashboard). The budget cannot see which, nor the other user's calls: it learns the
capacity left from where 429s happen, and keeps just under it.

- A 429 raises the interval to the one it met, plus BACKOFF (the calls already granted
  at the old spacing are not counted again: a 429 for a slot granted before the raise
  changes nothing). If the budget was already at or above a known ceiling, the ceiling
  was wrong (the other user grew): it moves up by BACKOFF too. (Doubling that step on
  each repeat found a co-tenant in fewer 429s but overshot it: measured worse.)
- Within RECOVER_S the interval comes down to just above the ceiling (HOLD_MARGIN), and
  stays there for HOLD_S: an outside user at a steady rate meets the ceiling rarely.
- Then the budget probes back towards the base spacing at PROBE_PER_S of it a second. If
  the other user is still there, the probe meets a 429 again near the old ceiling (about
  one 429 per HOLD_S); if it has gone, the budget is back at the limit in
  RECOVER_S + HOLD_S + the probe, under a minute for any user that leaves at least half.

The constants, and why:
- BACKOFF 0.15: a 429 costs 15% of rate for RECOVER_S, a second or so of calls; big enough
  that two or three 429s reach a co-tenant's level (1.15^3 = 1.5x).
- RECOVER_S 3: longer than any call stays in flight, so the next 429 reflects the new rate.
- HOLD_MARGIN 0.03: 3% under the capacity found; closer meets the window on jitter.
- HOLD_S 30: one probe (a 429 or two) per half minute while a co-tenant stays; short
  enough to be back at the limit within 60 s of a co-tenant leaving (RECOVER_S + HOLD_S +
  the probe).
- PROBE_PER_S 0.05: from twice the base spacing (a co-tenant taking half) back to the
  base in 20 s.
- MAX_FACTOR 8: never slower than 1/8 of the limit because of 429s alone.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKOFF = 0.15
RECOVER_S = 3.0
HOLD_MARGIN = 0.03
HOLD_S = 30.0
PROBE_PER_S = 0.05
MAX_FACTOR = 8.0


@dataclass(frozen=True)
class Throttle:
    """What the shared item holds about 429s (all 0 before the first)."""

    ceiling_ms: int = 0  # the interval at which the account's window was last met
    at_ms: int = 0  # when that 429 came
    granted_before_ms: int = 0  # slots before this were granted at the old spacing
    step_pct: int = 0  # the last raise of the ceiling, in percent


def interval_ms(base_ms: int, throttle: Throttle, now_ms: int) -> int:
    """The spacing to grant at `now_ms`."""
    if not throttle.ceiling_ms or base_ms <= 0:
        return base_ms
    age_s = max(0.0, (now_ms - throttle.at_ms) / 1000.0)
    ceiling = float(throttle.ceiling_ms)
    held = ceiling * (1 + HOLD_MARGIN)
    if age_s < RECOVER_S:
        raised = ceiling * (1 + BACKOFF)
        value = raised - (raised - held) * age_s / RECOVER_S
    elif age_s < RECOVER_S + HOLD_S:
        value = held
    else:
        value = held - base_ms * PROBE_PER_S * (age_s - RECOVER_S - HOLD_S)
    return max(base_ms, min(round(value), round(MAX_FACTOR * base_ms)))


def after_429(
    base_ms: int, throttle: Throttle, now_ms: int, slot_ms: int, next_ms: int
) -> Throttle | None:
    """The new throttle state after a 429 for a call granted at `slot_ms` (the schedule's
    first free slot is `next_ms`), or None when it changes nothing: the call was granted
    before the last raise took effect."""
    if base_ms <= 0 or (throttle.ceiling_ms and slot_ms < throttle.granted_before_ms):
        return None
    current = interval_ms(base_ms, throttle, now_ms)
    step = round(BACKOFF * 100)
    if throttle.ceiling_ms and current >= throttle.ceiling_ms * (1 + HOLD_MARGIN) - 1:
        # Met at or above the ceiling: the capacity left is smaller than was found.
        ceiling = current * (1 + step / 100)
    else:
        ceiling = float(current)  # met while probing: the capacity left is here
    ceiling = min(ceiling, MAX_FACTOR * base_ms)
    # Slots up to the schedule's next were granted at the old spacing.
    return Throttle(round(ceiling), now_ms, max(next_ms, now_ms), step)
