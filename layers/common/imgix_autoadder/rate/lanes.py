"""The shared budget's rules (rate/budget.py holds their DynamoDB store): pure functions.

A published limit of N calls per window W ("API Rate Limits": 4/s, 10/min, ...) is N
lanes. A lane carries one call at a time, and is free again one window after that call's
answer. A call reaches imgix after it is sent and before it is answered, so two calls of
one lane arrive more than W apart, and any interval of length W holds at most one arrival
per lane: at most N in all, on either reading of imgix's window (sliding or fixed), with
any network delay, handshake or pause between the grant and the send. An open-loop
schedule cannot promise that: it spaces the *sends*, and a delay that varies from call to
call (0-150 ms here) brings five arrivals into one second at any spacing above 0.87 of the
limit. A lane's call waits for its predecessor's answer instead, so the stack loses one
round trip per window (0.93 of the limit at a 75 ms mean round trip, 0.98 on loopback).

Who holds a lane: a caller (one process) *leases* it with one conditional write and uses
it for as many calls as fit in the lease, with no DynamoDB call. At the lease's end, or
when an invocation ends (core/invocation.py), it *releases* the lane, with its exact free
time, if a caller has said it waits for one (the item's `w`), or, at an invocation's end,
if others lease lanes and the function's queue is drained (core/backlog.py: no next batch
may come to use the lane while the others finish a burst); else it renews the lease (one
write) or keeps it. A process frozen mid-lease (a Lambda
environment between invocations) writes nothing: its lane is free LATE_ANSWER_S after the
lease, at worst.

imgix says nothing of who else uses the account. The stack alone never meets the window
(above), so a 429 means an outside user (another application, a person in the dashboard)
took part of it: the lane that met it is *parked* for HOLD_S, which leaves the outside
user a lane's worth (1 call per window). A second lane is parked only by a 429 more than a
window later: one full window cannot tell two lanes' worth of outside calls from one. A
parked lane comes back by itself after HOLD_S: if the outside user is still there, its
first call meets a 429 and parks it again (one 429 per HOLD_S per outside lane); if it has
gone, the stack is back at the full limit. Parked lanes come back STAGGER_S apart, so that
one probe, not all, meets an outside user that is still there.

The constants, and why:
- GUARD_MS 5: clock skew between two environments' wall clocks (Lambda's are NTP-synced
  to well under 1 ms) and imgix's own rounding; 0.5% of a one-second window.
- LEASE_WINDOWS 4: four calls per lease on a busy lane, one write to renew it (a quarter
  of a write per imgix call alone), two when it changes hands (a release and a claim:
  with ten environments, where lanes change hands at every lease's end, three windows
  cost 1.3 writes per call). A lease kept at the end of an invocation (nobody waiting)
  holds the lane from a newcomer for at most this long, a window (it may have just been
  renewed), LATE_ANSWER_S and a window, 6.5 s: inside a caller's 10 s pacing wait.
- Kept leases: at the end of an invocation with nobody waiting, a process keeps every
  lease, even one just renewed (a lease from a window after its last answer, 5 s).
  Giving them back cost a write each, and its next
  invocation a claim each before its first calls: a purge burst in one environment lost
  about 0.2 s of every 1.3 s batch to it, and spent 0.6 writes a call, not 0.27.
- LATE_ANSWER_S 0.5: a call sent before its lease ends is answered within half a second
  (imgix answers in tens of ms); a later answer may meet the next holder's first call in
  one window, a 429 that is retried, nothing lost.
- OWN_TURN_LEAD_MS 100: a lane's last holder may claim it again this long before it is
  free (the claim's write and a wake-up take tens of ms), after the others have had
  since the end of its lease.
- TURN_SPREAD_MS 800: a lane given back before it is free (a release, a lapsed lease)
  is claimed by each other caller at its own turn, in the 0.8 s before OWN_TURN_LEAD_MS
  before the lane is free (its id and the free time hashed; a released default-class lane
  is free a window after its last answer, so this is the room there is): the waiters, who
  all read the same item, claim one after another, each reading before its turn's claim,
  instead of all at once. A lost race is a write: with ten environments, a lane given back
  was raced for about once per claim. (Wider would let a waiter claim a lane free later
  than another whose turn comes after.)
- ONE_CALL_SLACK_MS 250: a per-minute limit's lane (refresh) is leased for one call, sent
  within this of its planned time: one write per call, none to give it back (a lease of
  windows would hold it for minutes); the lane is free LATE_ANSWER_S and a window after,
  0.75 s later than its answer would allow, 1.3% of its window.
- POLL_WINDOWS 0.5, POLL_SPREAD_WINDOWS 0.2: a caller waiting for a lane held by others
  reads the item every half window, plus up to a fifth at random (so that waiters for one
  lane read apart: the first claims it, the others see it taken). A holder may release
  at any time (its invocation ended), and the last events of a burst should not wait
  for a lease's end. Its next call waits for the lane's free time anyway.
- WANTED_WINDOWS 4, said again after 2-3 windows: a caller that waits says so (`w`, and
  which caller: `wb`) once the last word is between two and three windows old (its id
  hashed, so that the waiters, reading the item at different times, do not all write at
  once), and holders take it as said for 4 windows, a lease: whoever's lease ends while
  somebody waits gives the lane back. About one write per 2.5 windows however many wait.
- HOLD_S 45, STAGGER_S 10: one probe per 45 s while an outside user stays (about 1% of
  the stack's calls at 3/s); back at the full limit within 45 s of it leaving, and within
  a minute for two lanes' worth.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

QueueDrained = Callable[[], bool]  # whether the caller's queue holds nothing more (SQS)

GUARD_MS = 5
LEASE_WINDOWS = 4
LATE_ANSWER_S = 0.5
HOLD_S = 45.0
STAGGER_S = 10.0
OWN_TURN_LEAD_MS = 100
WANTED_WINDOWS = 4
TURN_SPREAD_MS = 800
ONE_CALL_SLACK_MS = 250
POLL_WINDOWS = 0.5
POLL_SPREAD_WINDOWS = 0.2


@dataclass(frozen=True)
class Limit:
    """A published limit as lanes: `count` calls per `window_ms`."""

    count: int
    window_ms: int

    @classmethod
    def per_second(cls, per_second: float) -> Limit:
        """imgix publishes per second (4/s) or per minute (refresh: 10/min); a rate under
        1/s is counted per minute. 0: unpaced (no lanes)."""
        window_ms = 1000 if per_second >= 1 else 60_000
        return cls(max(0, int(per_second * window_ms / 1000 + 1e-9)), window_ms)

    @property
    def spacing_ms(self) -> float:
        """One process's sends are spread this far apart: no burst of N at once, which a
        limit read as a rate rather than a count per window would refuse."""
        return self.window_ms / self.count if self.count else 0.0

    @property
    def lease_ms(self) -> int:
        return LEASE_WINDOWS * self.window_ms

    @property
    def one_call_leases(self) -> bool:
        """A per-minute limit's lane is leased for one call at a time (ONE_CALL_SLACK_MS)."""
        return self.window_ms >= 60_000


@dataclass(frozen=True)
class Lane:
    """One lane as the shared item holds it (all 0 before its first use)."""

    holder: str = ""
    until_ms: int = 0  # the holder sends no call on this lane after this
    free_ms: int = 0  # nobody else sends a call on this lane before this
    parked_until_ms: int = 0  # a 429 took it out of use until then
    parked_at_ms: int = 0


@dataclass
class Held:
    """A lane this process leases, as it knows it."""

    until_ms: int
    ready_ms: int  # its next call may be sent from then
    busy: bool = False  # a call of this process is on it


def spaced(earliest: int, booked: list[int], spacing: int) -> int:
    """The first time from `earliest` at least `spacing` away from every booked send of
    this process (a later booking may leave a gap before it)."""
    at = earliest
    for send in sorted(booked):
        if at <= send - spacing:
            break
        at = max(at, send + spacing)
    return at


def best_held(
    held: dict[int, Held], now_ms: int, latest_ms: int, booked: list[int], spacing: int
) -> tuple[tuple[int, int] | None, int | None]:
    """The idle held lane that can carry a call soonest within its lease and `latest_ms`,
    with that send time; and when any idle held lane could send at all (None: none)."""
    best: tuple[int, int] | None = None
    soonest: int | None = None
    for index, lane in held.items():
        if lane.busy:
            continue
        send_at = spaced(max(now_ms, lane.ready_ms), booked, spacing)
        soonest = send_at if soonest is None else min(soonest, send_at)
        if send_at <= min(lane.until_ms, latest_ms) and (best is None or send_at < best[1]):
            best = (index, send_at)
    return best, soonest


def cannot_say() -> bool:
    """Without a way to ask its queue, a caller never takes it for drained: it keeps lanes."""
    return False


def released_when_idle(
    held: dict[int, Held],
    lanes: Callable[[], dict[int, Lane]],
    me: str,
    now_ms: int,
    wanted: Callable[[int], bool],
    queue_drained: QueueDrained = cannot_say,
) -> list[int]:
    """The lanes a process gives back when its invocation ends: every idle one if somebody
    waits for a lane (`wanted`, which may read the item), or if others lease `lanes` (as
    known once `wanted` is asked) while its queue holds nothing more (`queue_drained`, asked
    last: an SQS call), since no next batch may come to use them while the others finish;
    else none (its next invocation goes on with them)."""
    idle = [index for index, lane in held.items() if not lane.busy]
    if not idle:
        return []
    if wanted(now_ms) or (leased_by_others(lanes(), now_ms, me) and queue_drained()):
        return idle
    return []


def free_after_answer(answered_ms: int, limit: Limit) -> int:
    """When a lane whose last call was answered at `answered_ms` may carry the next."""
    return answered_ms + limit.window_ms + GUARD_MS


def lease(now_ms: int, free_ms: int, limit: Limit, send_at_ms: int = 0) -> tuple[int, int]:
    """A new lease's (until, free): it starts when the lane is free (a one-call lease: at
    its call's planned send, `send_at_ms`), and, unreleased, the lane is free again
    LATE_ANSWER_S after its last send could have been answered."""
    if limit.one_call_leases:
        until = max(now_ms, free_ms, send_at_ms) + ONE_CALL_SLACK_MS
    else:
        until = max(now_ms, free_ms) + limit.lease_ms
    return until, until + round(LATE_ANSWER_S * 1000) + limit.window_ms + GUARD_MS


def claimable_at(lane: Lane, me: str, contested: bool = True) -> int:
    """When `me` may claim the lane: once nobody's lease runs and it is not parked, and
    from `me`'s turn before it is free (TURN_SPREAD_MS). While somebody waits for a lane
    (`contested`), a lane `me` released itself is left to the others until it is free
    (they were waiting for their turn; it is `me`'s again if none took it)."""
    if contested and lane.holder == me:
        turn = lane.free_ms - OWN_TURN_LEAD_MS
    else:
        ahead = zlib.crc32(f"{me}:{lane.free_ms}".encode()) % TURN_SPREAD_MS
        turn = lane.free_ms - OWN_TURN_LEAD_MS - ahead
    return max(lane.until_ms + 1, lane.parked_until_ms + 1, turn)


def claimable(
    lanes: dict[int, Lane], now_ms: int, latest_ms: int, me: str, contested: bool = True
) -> list[int]:
    """Lanes `me` may claim now and use by `latest_ms`, soonest free first; among lanes
    free alike, each caller starts from its own (`me` hashed), so that callers arriving
    together ask for different lanes instead of racing for one."""
    usable = [
        index
        for index, lane in lanes.items()
        if claimable_at(lane, me, contested) <= now_ms and lane.free_ms <= latest_ms
    ]
    start = zlib.crc32(me.encode())
    count = max(len(lanes), 1)
    return sorted(
        usable, key=lambda index: (max(lanes[index].free_ms, now_ms), (index - start) % count)
    )


def soonest_claim(
    lanes: dict[int, Lane], now_ms: int, me: str, contested: bool = True
) -> int | None:
    """When the next lane not claimable now may become so (None: none will)."""
    times = [claimable_at(lane, me, contested) for lane in lanes.values()]
    later = [at for at in times if at > now_ms]
    return min(later) if later else None


def says_waiting(lanes: dict[int, Lane], now_ms: int, me: str, limit: Limit) -> bool:
    """Whether `me`, holding no lane, says it waits (the item's `w`): when others lease
    lanes, and not for one-call leases, which nobody keeps."""
    return not limit.one_call_leases and leased_by_others(lanes, now_ms, me)


def says_waiting_again_after(me: str, limit: Limit) -> int:
    """How old `w` may be before `me`, still waiting, writes it again: 2-3 windows."""
    return 2 * limit.window_ms + zlib.crc32(me.encode()) % limit.window_ms


def holds_none(lanes: dict[int, Lane], who: str, now_ms: int) -> bool:
    """Whether the caller `who` (the last to say it waits) holds no lane in `lanes`."""
    return bool(who) and not any(
        lane.holder == who and lane.until_ms >= now_ms for lane in lanes.values()
    )


def leased_by_others(lanes: dict[int, Lane], now_ms: int, me: str) -> bool:
    """Whether a caller that finds no lane to claim waits on another's lease (and should
    say so: the item's `w`), not only on its own lanes' windows."""
    return any(lane.until_ms >= now_ms and lane.holder != me for lane in lanes.values())


def soonest_use(
    lanes: dict[int, Lane], me: str, held_at: int | None, now_ms: int, contested: bool = True
) -> int:
    """When a call could be carried at the soonest: on a lane `me` may claim, once it is
    free, or on a held lane (`held_at`)."""
    usable = [max(claimable_at(lane, me, contested), lane.free_ms) for lane in lanes.values()]
    return min([*usable, *([held_at] if held_at is not None else [])], default=now_ms)


def park(lanes: dict[int, Lane], index: int, now_ms: int, limit: Limit) -> Lane | None:
    """The lane after a 429 for its call at `now_ms`, or None: another lane was parked
    within the last window (one window full cannot tell two lanes' worth from one)."""
    if any(
        lane.parked_until_ms > now_ms and lane.parked_at_ms > now_ms - 2 * limit.window_ms
        for other, lane in lanes.items()
        if other != index
    ):
        return None
    back = now_ms + round(HOLD_S * 1000)
    still_parked = [
        lane.parked_until_ms for lane in lanes.values() if lane.parked_until_ms > now_ms
    ]
    if still_parked:
        back = max(back, max(still_parked) + round(STAGGER_S * 1000))
    return Lane("", 0, free_after_answer(now_ms, limit), back, now_ms)
