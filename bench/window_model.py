"""A model of the shared budget against imgix's window, for issue #23's co-tenant cases:

    .venv/bin/python -m bench.window_model

Not a benchmark of the product (figure 1 is: real processes, the real handler). It replays
the budget's own pure rules (rate/control.py: `interval_ms`, `after_429`) as a
discrete-event simulation: E environments each keep one reservation on the shared
schedule, each call arrives at its slot plus a small jitter, a 429'd call takes a new slot;
an outside user of the account calls at a steady rate with a few ms of jitter. Both readings
of imgix's undocumented window are modelled (localdev/imgix_emulator/limits.py): sliding
(at most N in any interval of the window's length) and fixed (N per aligned second).

With the constants of control.py it reproduces figure 1's co-tenant row (about 0.83 of the
capacity left, 2-3% 429s to the stack, near 20% to the outside user, sliding window) in a
second, which makes it a cheap place to try a change before the bench. What it shows: on
the sliding reading, an outside user at "1/s" with any jitter puts two calls into some
1-second windows, so the capacity it leaves is 2 calls there, not 3; the fixed reading
leaves 3, and the same rules reach 0.93-0.98 of it.
"""

from __future__ import annotations

import heapq
import random
import statistics
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "common")]

from imgix_autoadder.rate.budget import SPACING_MARGIN  # noqa: E402 - the layer, on the path
from imgix_autoadder.rate.control import Throttle, after_429, interval_ms  # noqa: E402

ANSWER_MS = 20  # an environment reserves its next slot once the answer is back


@dataclass(frozen=True)
class Case:
    outside_per_s: float = 0.0
    fixed_window: bool = False
    jitter_ms: float = 5.0  # the stack's arrival jitter
    outside_jitter_ms: float = 5.0
    calls: int = 200
    environments: int = 3
    limit: int = 4  # imgix's default class: 4 per second
    window_ms: int = 1000


@dataclass(frozen=True)
class Outcome:
    of_capacity: float  # the stack's rate over (limit - the outside user's rate)
    stack_429_pct: float
    outside_429_pct: float


class Window:
    """imgix's count, on one reading; a refused call does not count."""

    def __init__(self, limit: int, window_ms: int, fixed: bool) -> None:
        self.limit, self.window_ms, self.fixed = limit, window_ms, fixed
        self._stamps: deque[float] = deque()
        self._periods: dict[int, int] = {}

    def take(self, at_ms: float) -> bool:
        if self.fixed:
            period = int(at_ms // self.window_ms)
            if self._periods.get(period, 0) >= self.limit:
                return False
            self._periods[period] = self._periods.get(period, 0) + 1
            return True
        while self._stamps and self._stamps[0] <= at_ms - self.window_ms:
            self._stamps.popleft()
        if len(self._stamps) >= self.limit:
            return False
        self._stamps.append(at_ms)
        return True


def run(case: Case, seed: int) -> Outcome:
    rng = random.Random(seed)
    base = round(case.window_ms / (case.limit * SPACING_MARGIN))
    window = Window(case.limit, case.window_ms, case.fixed_window)
    throttle, next_ms = Throttle(), 0
    # (arrival ms, who, slot ms): "stack" calls and the "outside" user's
    arrivals: list[tuple[float, str, float]] = []

    def reserve(now_ms: int) -> None:
        nonlocal next_ms
        slot = max(now_ms, next_ms)
        next_ms = slot + interval_ms(base, throttle, now_ms)
        heapq.heappush(arrivals, (slot + rng.uniform(0, case.jitter_ms), "stack", slot))

    for _ in range(case.environments):
        reserve(0)
    if case.outside_per_s:
        start = rng.uniform(0, 1000)
        heapq.heappush(arrivals, (start + rng.uniform(0, case.outside_jitter_ms), "outside", start))
    done = refused = outside = outside_refused = 0
    first = last = 0.0
    while done < case.calls:
        at, who, slot = heapq.heappop(arrivals)
        if who == "outside":
            outside += 1
            outside_refused += not window.take(at)
            nxt = slot + 1000 / case.outside_per_s
            heapq.heappush(arrivals, (nxt + rng.uniform(0, case.outside_jitter_ms), "outside", nxt))
            continue
        if window.take(at):
            done += 1
            first, last = (at if done == 1 else first), at
        else:
            refused += 1
            raised = after_429(base, throttle, int(at) + ANSWER_MS, int(slot), next_ms)
            throttle = raised or throttle
        reserve(int(at) + ANSWER_MS)
    rate = (done - 1) / ((last - first) / 1000)
    return Outcome(
        of_capacity=rate / (case.limit - case.outside_per_s),
        stack_429_pct=100 * refused / (done + refused),
        outside_429_pct=100 * outside_refused / max(1, outside),
    )


def main() -> None:
    print("| outside user | window | / capacity left | 429s to the stack | to the outside user |")
    print("| --- | --- | --- | --- | --- |")
    for outside in (0.0, 1.0, 2.0):
        for fixed in (False, True):
            outcomes = [run(Case(outside, fixed), seed) for seed in range(8)]
            print(
                f"| {outside:g}/s | {'fixed' if fixed else 'sliding'} "
                f"| {statistics.mean(o.of_capacity for o in outcomes):.3f} "
                f"| {statistics.mean(o.stack_429_pct for o in outcomes):.1f}% "
                f"| {statistics.mean(o.outside_429_pct for o in outcomes):.1f}% |"
            )


if __name__ == "__main__":
    main()
