"""A model of the shared budget's lanes against imgix's window, for issue #23:

    .venv/bin/python -m bench.window_model

Not a benchmark of the product (figure 1 is: real processes, the real handler). It replays
the budget's own pure rules (rate/lanes.py: `free_after_answer`, `park`) as a
discrete-event simulation: N lanes, each call sent when its lane is free, arriving after a
random delay (uniform 0-150 ms, as the bench's jitter) and answered a few ms later; an
outside user of the account calls at a steady rate with a few ms of jitter. Both readings
of imgix's undocumented window are modelled (localdev/imgix_emulator/limits.py): sliding
(at most N in any interval of the window's length) and fixed (N per aligned second).

Beside the lanes it runs what they replace, strict spacing at 0.90 and 0.95 of the limit,
so that the table shows why: spaced sends meet the window whenever the delays vary, lanes
never do, at about 1 / (1 + round trip) of the limit. With an outside user, the sliding
reading leaves the stack two calls in some windows, not three (an outside user "at 1/s"
with any jitter puts two calls into some seconds), and its calls meet 429s that alone
they would not; the fixed reading leaves three.
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

from imgix_autoadder.rate.lanes import Lane, Limit, free_after_answer, park  # noqa: E402

ANSWER_MS = 5  # imgix answers this long after a call arrives


@dataclass(frozen=True)
class Case:
    scheme: str = "lanes"  # or "spaced 0.90", "spaced 0.95"
    outside_per_s: float = 0.0
    fixed_window: bool = False
    jitter_ms: float = 150.0
    outside_jitter_ms: float = 5.0
    calls: int = 400


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
    limit = Limit.per_second(4)
    window = Window(limit.count, limit.window_ms, case.fixed_window)
    lanes = {index: Lane() for index in range(limit.count)}
    # (arrival ms, who, lane or -1): the stack's calls and the outside user's
    events: list[tuple[float, str, int]] = []
    spacing = 0.0 if case.scheme == "lanes" else 1000 / (4 * float(case.scheme.split()[1]))

    next_slot = 0.0  # the spaced schemes' schedule: every call, retries too, takes a slot

    def send(lane: int, at: float) -> None:
        nonlocal next_slot
        if spacing:
            at, next_slot = next_slot, next_slot + spacing
        heapq.heappush(events, (at + rng.uniform(0, case.jitter_ms), "stack", lane))

    for index in range(limit.count):
        send(index, index * limit.spacing_ms)
    if case.outside_per_s:
        start = rng.uniform(0, 1000)
        heapq.heappush(events, (start + rng.uniform(0, case.outside_jitter_ms), "outside", -1))
    done = refused = outside = outside_refused = 0
    first = last = 0.0
    next_outside = 0.0
    while done < case.calls:
        at, who, lane = heapq.heappop(events)
        if who == "outside":
            outside += 1
            outside_refused += not window.take(at)
            next_outside = (next_outside or at) + 1000 / case.outside_per_s
            jitter = rng.uniform(0, case.outside_jitter_ms)
            heapq.heappush(events, (next_outside + jitter, "outside", -1))
            continue
        answered = at + ANSWER_MS
        if window.take(at):
            done += 1
            first, last = (at if done == 1 else first), at
        else:
            refused += 1
            if spacing == 0:
                lanes[lane] = park(lanes, lane, int(at), limit) or lanes[lane]
        if spacing:
            send(lane, 0.0)
            continue
        lanes[lane] = Lane(
            "", 0, free_after_answer(int(answered), limit), lanes[lane].parked_until_ms
        )
        ready = max(lanes[lane].free_ms, lanes[lane].parked_until_ms)
        send(lane, ready)
    rate = (done - 1) / ((last - first) / 1000)
    return Outcome(
        of_capacity=rate / (limit.count - case.outside_per_s),
        stack_429_pct=100 * refused / (done + refused),
        outside_429_pct=100 * outside_refused / max(1, outside),
    )


def main() -> None:
    print("| scheme | outside user | window | / capacity left | 429s to the stack | to it |")
    print("| --- | --- | --- | --- | --- | --- |")
    for scheme in ("lanes", "spaced 0.90", "spaced 0.95"):
        for outside in (0.0, 1.0) if scheme == "lanes" else (0.0,):
            for fixed in (False, True):
                outcomes = [run(Case(scheme, outside, fixed), seed) for seed in range(8)]
                print(
                    f"| {scheme} | {outside:g}/s | {'fixed' if fixed else 'sliding'} "
                    f"| {statistics.mean(o.of_capacity for o in outcomes):.3f} "
                    f"| {statistics.mean(o.stack_429_pct for o in outcomes):.1f}% "
                    f"| {statistics.mean(o.outside_429_pct for o in outcomes):.1f}% |"
                )


if __name__ == "__main__":
    main()
