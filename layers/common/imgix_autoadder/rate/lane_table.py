"""The shared budget's DynamoDB item: one per (account, limit class), every lane's holder,
lease end, free time and parking (rate/lanes.py) as attributes `h0, u0, f0, p0, q0, h1, ...`,
and `w` and `wb`, when a caller last found no lane to claim, and which.

Every write is a conditional UpdateItem on one lane's attributes, so writers of different
lanes never conflict, and a lost race returns the item (ReturnValuesOnConditionCheckFailure)
instead of costing a read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgix_autoadder.rate.lanes import WANTED_WINDOWS, Lane

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ITEM_TTL_S = 24 * 3600
FIELDS = ("h", "u", "f", "p", "q")  # holder, until, free, parked until, parked at


class LaneTable:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        key: str,
        lanes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._key = {"id": {"S": key}}
        self._lanes = lanes
        self._clock = clock
        self.write_ms = 0  # the UpdateItem round trip, averaged
        self.wanted_ms = 0  # when a caller last found no lane (`w`), as last seen
        self.wanted_by = ""  # which (`wb`)
        self.seen_ms = 0  # when the item was last seen whole (a read, or a claim's answer)
        self.calls = 0
        self.writes = 0
        self.writes_by: Counter[str] = Counter()  # claim, lost, renew, release, park, want

    def claim(
        self, index: int, holder: str, until: int, free: int, now: int, assumed_free: int
    ) -> tuple[bool, dict[int, Lane]]:
        """Lease lane `index` if nobody's lease runs, it is not parked, and it is free by
        `assumed_free`. Returns whether it was won, and the lanes as they were before."""
        try:
            old = self._update(
                index,
                "SET #h = :me, #u = :until, #f = :free, expires_at = :ttl",
                "(attribute_not_exists(#u) OR #u < :now)"
                " AND (attribute_not_exists(#p) OR #p < :now)"
                " AND (attribute_not_exists(#f) OR #f <= :assumed)",
                {
                    ":me": {"S": holder},
                    ":until": {"N": str(until)},
                    ":free": {"N": str(free)},
                    ":now": {"N": str(now)},
                    ":assumed": {"N": str(assumed_free)},
                    ":ttl": {"N": str(now // 1000 + ITEM_TTL_S)},
                },
                ("h", "u", "f", "p"),
            )
        except ClientError as exc:
            _only_condition_failures(exc)
            self.writes_by["lost"] += 1
            item = exc.response.get("Item")
            return False, self.parse(item) if isinstance(item, dict) and item else self.read()
        self.writes_by["claim"] += 1
        return True, self.parse(old.get("Attributes", {}))

    def write(
        self, index: int, lane: Lane, holder: str, why: str, until: int | None = None
    ) -> bool:
        """Set lane `index` to `lane` if `holder` still holds it (and, given `until`, by
        that lease): False when somebody claimed it after the lease. `why` names the write
        in `writes_by` (renew, release, park)."""
        self.writes_by[why] += 1
        condition = "#h = :me" + (" AND #u = :until" if until is not None else "")
        values: dict[str, Any] = {
            ":holder": {"S": lane.holder},
            ":u": {"N": str(lane.until_ms)},
            ":f": {"N": str(lane.free_ms)},
            ":p": {"N": str(lane.parked_until_ms)},
            ":q": {"N": str(lane.parked_at_ms)},
            ":me": {"S": holder},
        }
        if until is not None:
            values[":until"] = {"N": str(until)}
        try:
            self._update(
                index,
                "SET #h = :holder, #u = :u, #f = :f, #p = :p, #q = :q",
                condition,
                values,
                FIELDS,
            )
        except ClientError as exc:
            _only_condition_failures(exc)
            return False
        return True

    def want(self, now: int, again_after_ms: int, holder: str) -> None:
        """Say that `holder` waits for a lane, unless somebody did within `again_after_ms`:
        holders give theirs back at the end of a lease or an invocation, not keep them."""
        if now - self.wanted_ms <= again_after_ms:
            return
        self.calls += 1
        self.writes += 1
        self.writes_by["want"] += 1
        self._ddb.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET w = :now, wb = :me, expires_at = :ttl",
            ExpressionAttributeValues={
                ":now": {"N": str(now)},
                ":me": {"S": holder},
                ":ttl": {"N": str(now // 1000 + ITEM_TTL_S)},
            },
        )
        self.wanted_ms, self.wanted_by = max(self.wanted_ms, now), holder

    def wanted(self, now: int, window_ms: int, but: str = "") -> bool:
        """Whether a caller (other than `but`) said it waits within WANTED_WINDOWS, as
        last seen."""
        recent = now - self.wanted_ms <= WANTED_WINDOWS * window_ms
        return recent and not (but and self.wanted_by == but)

    def read(self) -> dict[int, Lane]:
        self.calls += 1
        item = self._ddb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
        return self.parse(item.get("Item", {}))

    def parse(self, item: dict[str, Any]) -> dict[int, Lane]:
        def number(name: str) -> int:
            return int(item.get(name, {}).get("N", 0))

        self.seen_ms = round(self._clock() * 1000)
        if "w" in item and number("w") >= self.wanted_ms:
            self.wanted_ms, self.wanted_by = number("w"), item.get("wb", {}).get("S", "")
        return {
            index: Lane(
                item.get(f"h{index}", {}).get("S", ""),
                number(f"u{index}"),
                number(f"f{index}"),
                number(f"p{index}"),
                number(f"q{index}"),
            )
            for index in range(self._lanes)
        }

    def _update(
        self,
        index: int,
        expression: str,
        condition: str,
        values: dict[str, Any],
        fields: tuple[str, ...],
    ) -> dict[str, Any]:
        self.calls += 1
        self.writes += 1
        started = self._clock()
        try:
            result: dict[str, Any] = dict(
                self._ddb.update_item(
                    TableName=self._table,
                    Key=self._key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={f"#{name}": f"{name}{index}" for name in fields},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",  # a claim starts from the lane's old free time
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",  # and if lost, why
                )
            )
        finally:
            elapsed = (self._clock() - started) * 1000
            self.write_ms = round(0.8 * self.write_ms + 0.2 * min(elapsed, 100.0))
        return result


def _only_condition_failures(exc: ClientError) -> None:
    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        raise exc
