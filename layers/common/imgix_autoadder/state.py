"""Per-(bucket, key) memory of what imgix was last told, in DynamoDB.

It is what makes at-least-once, out-of-order S3 delivery safe: a stale event (older
sequencer) is skipped, a duplicate costs no API call, and refresh is only sent when the
ETag really changed. Writes are conditional, so a late writer can never roll state back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from imgix_autoadder.s3_events import ObjectChange

SEQUENCER_WIDTH = 64
TOMBSTONE_TTL_S = 30 * 24 * 3600  # deleted keys are forgotten after 30 days
BATCH_GET_LIMIT = 100  # DynamoDB's BatchGetItem maximum
UNPROCESSED_RETRIES = 4


def sortable_sequencer(sequencer: str) -> str:
    """AWS documents: left-pad with zeros to equal length, then compare as strings."""
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0") if sequencer else ""


class StateUnavailable(Exception):
    """DynamoDB kept some keys unprocessed (throttling): the batch is retried later."""


@dataclass(frozen=True)
class KeyState:
    sequencer: str  # sortable form
    etag: str
    deleted: bool
    action: str

    def is_newer_or_same(self, change: ObjectChange) -> bool:
        """True when this state already reflects `change` or something after it."""
        if not self.sequencer or not change.sequencer:
            return False  # cannot order without sequencers; fall back to ETag checks
        return sortable_sequencer(change.sequencer) <= self.sequencer


def _state_of(item: dict[str, Any]) -> KeyState:
    return KeyState(
        sequencer=item.get("sequencer", {}).get("S", ""),
        etag=item.get("etag", {}).get("S", ""),
        deleted=item.get("deleted", {}).get("BOOL", False),
        action=item.get("action", {}).get("S", ""),
    )


class StateStore:
    """On the low-level DynamoDB client: the resource layer costs ~100 ms more at cold start."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._ddb = dynamodb_client
        self._table = table_name

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], KeyState]:
        """The states of many (bucket, key) pairs in one round trip per 100: absent ones are
        missing from the result. A batch's keys are read together, before any is handled."""
        wanted = [{"bucket": {"S": b}, "key": {"S": k}} for b, k in dict.fromkeys(keys)]
        found: dict[tuple[str, str], KeyState] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": wanted[start : start + BATCH_GET_LIMIT],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(UNPROCESSED_RETRIES + 1):
                response = self._ddb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[(item["bucket"]["S"], item["key"]["S"])] = _state_of(item)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if attempt == UNPROCESSED_RETRIES:  # throttled throughout: let SQS retry
                    raise StateUnavailable(f"{len(request[self._table]['Keys'])} keys unread")
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # full jitter, as AWS advises
        return found

    def record(self, change: ObjectChange, action: str, absent: bool = False) -> bool:
        """Remember `change`; False when a newer event was recorded meanwhile.

        `absent`: the object was created but is gone from the origin already.
        """
        sequencer = sortable_sequencer(change.sequencer)
        deleted = change.removed or absent
        now = int(time.time())
        item: dict[str, Any] = {
            "bucket": {"S": change.bucket},
            "key": {"S": change.key},
            "sequencer": {"S": sequencer},
            "etag": {"S": change.etag},
            "deleted": {"BOOL": deleted},
            "action": {"S": action},
            "updated_at": {"N": str(now)},
        }
        if deleted:
            item["expires_at"] = {"N": str(now + TOMBSTONE_TTL_S)}
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#k) OR #s <= :s",
                ExpressionAttributeNames={"#k": "key", "#s": "sequencer"},
                ExpressionAttributeValues={":s": {"S": sequencer}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
