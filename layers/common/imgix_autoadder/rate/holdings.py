"""What one process knows of the shared lanes item and holds of it (rate/budget.py's state):
the lanes as it last read them, its leases, and the writes that only report what it does
(a release, the waiting word `w`), apart from how its calls choose lanes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from imgix_autoadder.rate import lanes as rules
from imgix_autoadder.rate.lane_table import LaneTable
from imgix_autoadder.rate.lanes import Held, Lane, Limit

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class Holdings:
    """The state SharedRateLimiter chooses from, guarded by one condition variable."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        account: str,
        limit_class: str,
        per_second: float,
        idle_only: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limit = Limit.per_second(per_second)
        key, count = f"{account}#{limit_class}", self._limit.count
        self.table = LaneTable(dynamodb, table, key, count, clock)  # public: the bench counts
        self._idle_only = idle_only
        self._clock = clock
        self._sleep = sleep
        self._me = uuid.uuid4().hex[:16]
        self._lanes: dict[int, Lane] = {index: Lane() for index in range(self._limit.count)}
        self._held: dict[int, Held] = {}
        self._claiming: set[int] = set()
        self._polling = False  # a thread of this process sleeps to read the item
        self._sends: list[int] = []  # this process's booked send times, recent and to come
        self._cond = threading.Condition()
        self._mine = threading.local()  # .lane: this thread's call's lane; .last: its last

    def _say_waiting(self, now: int) -> None:
        """Holding no lane while others lease theirs: say so (rules.says_waiting)."""
        with self._cond:
            lanes, holding = dict(self._lanes), self._idle_only or bool(self._held)
        if not holding and rules.says_waiting(lanes, now, self._me, self._limit):
            self.table.want(now, rules.says_waiting_again_after(self._me, self._limit), self._me)

    def _wanted(self, now: int, read: bool = False) -> bool:  # did a caller find none lately?
        if read:
            self._remember(self.table.read())
        return self.table.wanted(now, self._limit.window_ms)

    def _release(self, index: int, held: Held) -> None:
        """The lane is anybody's from `ready_ms` (its last call's answer plus a window)."""
        with self._cond:
            lane = self._lanes[index]
        released = Lane(self._me, 0, held.ready_ms, lane.parked_until_ms, lane.parked_at_ms)
        if self.table.write(index, released, self._me, "release", held.until_ms):
            with self._cond:
                self._lanes[index] = released

    def _known(self) -> dict[int, Lane]:  # the lanes as this process knows them now
        with self._cond:
            return dict(self._lanes)

    def _remember(self, lanes: dict[int, Lane]) -> None:
        with self._cond:
            for index, lane in lanes.items():
                if index not in self._held:  # what this process holds, it knows best
                    self._lanes[index] = lane

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
