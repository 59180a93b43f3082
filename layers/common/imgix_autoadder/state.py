"""Per-(bucket, key) memory of what imgix was last told, in DynamoDB.

It is what makes at-least-once, out-of-order S3 delivery safe: a stale event (older
sequencer) is skipped, a duplicate costs no API call, and refresh is only sent when the
ETag really changed. Writes are conditional, so a late writer can never roll state back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from imgix_autoadder.s3_events import ObjectChange

SEQUENCER_WIDTH = 64
TOMBSTONE_TTL_S = 30 * 24 * 3600  # deleted keys are forgotten after 30 days


def sortable_sequencer(sequencer: str) -> str:
    """AWS documents: left-pad with zeros to equal length, then compare as strings."""
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0") if sequencer else ""


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


class StateStore:
    def __init__(self, table: Any) -> None:
        self._table = table  # a boto3 DynamoDB Table resource

    def get(self, bucket: str, key: str) -> KeyState | None:
        item = self._table.get_item(Key={"bucket": bucket, "key": key}, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        return KeyState(
            sequencer=str(item.get("sequencer", "")),
            etag=str(item.get("etag", "")),
            deleted=bool(item.get("deleted", False)),
            action=str(item.get("action", "")),
        )

    def record(self, change: ObjectChange, action: str, absent: bool = False) -> bool:
        """Remember `change`; False when a newer event was recorded meanwhile.

        `absent`: the object was created but is gone from the origin already.
        """
        sequencer = sortable_sequencer(change.sequencer)
        deleted = change.removed or absent
        item: dict[str, Any] = {
            "bucket": change.bucket,
            "key": change.key,
            "sequencer": sequencer,
            "etag": change.etag,
            "deleted": deleted,
            "action": action,
            "updated_at": int(time.time()),
        }
        if deleted:
            item["expires_at"] = int(time.time()) + TOMBSTONE_TTL_S
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(#k) OR #s <= :s",
                ExpressionAttributeNames={"#k": "key", "#s": "sequencer"},
                ExpressionAttributeValues={":s": sequencer},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
