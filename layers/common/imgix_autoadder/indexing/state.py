"""Per-(bucket, key) state in DynamoDB: what S3 held when last looked at, and, apart from
it, what imgix was last told (indexed with an ETag and metadata, or purged).

It is what makes at-least-once, out-of-order S3 delivery safe: a stale event (older
sequencer) is skipped, a duplicate costs no API call, and imgix is called only when what
S3 holds now differs from what imgix was told. Writes are conditional on the sequencer,
so a late writer can never roll state back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgix_autoadder.indexing.key_state import KeyState, Told
from imgix_autoadder.ingest.ledger import Receipt, receipt_key, receipt_of
from imgix_autoadder.s3.events import ObjectChange, sortable_sequencer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TOMBSTONE_TTL_S = 30 * 24 * 3600  # deleted keys are forgotten after 30 days
BATCH_GET_LIMIT = 100  # DynamoDB's BatchGetItem maximum
UNPROCESSED_RETRIES = 4


class StateUnavailable(Exception):
    """DynamoDB kept some keys unprocessed (throttling): the batch is retried later."""


def _state_of(item: dict[str, Any]) -> KeyState:
    def text(name: str) -> str:
        return str(item.get(name, {}).get("S", ""))

    told = text("told")
    if not told and "told" not in item:  # written before the two-sided model
        legacy_deleted = bool(item.get("deleted", {}).get("BOOL", False))
        if text("action") == "purge":
            told = Told.PURGED
        elif text("action") in ("add", "refresh") and not legacy_deleted:
            told = Told.INDEXED
    return KeyState(
        sequencer=text("sequencer"),
        told=Told(told),
        told_etag=text("told_etag") or text("etag"),
        told_fingerprint=text("told_fingerprint"),
        told_version=text("told_version"),
        told_sequencer=text("told_sequencer") or text("sequencer"),
        told_fields=text("told_fields"),
        s3_present=bool(item.get("s3_present", {}).get("BOOL", False)),
        s3_etag=text("s3_etag"),
        s3_version=text("s3_version"),
    )


class StateStore:
    """On the low-level DynamoDB client: the resource layer costs ~100 ms more at cold start."""

    def __init__(self, dynamodb_client: DynamoDBClient, table_name: str) -> None:
        self._ddb = dynamodb_client
        self._table = table_name

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], KeyState]:
        """The states of many (bucket, key) pairs in one round trip per 100: absent ones are
        missing from the result. A batch's keys are read together, before any is handled."""
        return self.read(keys)[0]

    def read(
        self,
        keys: Iterable[tuple[str, str]],
        receipts: Iterable[tuple[str, str]] = (),
    ) -> tuple[dict[tuple[str, str], KeyState], dict[tuple[str, str], Receipt]]:
        """Key states and upload receipts ((source id, origin path), ingest/ledger.py) in the
        same round trips: one BatchGetItem per 100 items."""
        wanted_receipts = {receipt_key(*pair): pair for pair in receipts}
        items = self._batch_get([*dict.fromkeys(keys), *wanted_receipts])
        states: dict[tuple[str, str], KeyState] = {}
        found: dict[tuple[str, str], Receipt] = {}
        for pair, item in items.items():
            if pair in wanted_receipts:
                found[wanted_receipts[pair]] = receipt_of(item)
            else:
                states[pair] = _state_of(item)
        return states, found

    def consume_receipt(self, source_id: str, origin_path: str, receipt: Receipt) -> None:
        """The origin object of this upload was seen: a later write of the key is a real
        change. Conditional, so that a newer upload's receipt survives."""
        partition, path = receipt_key(source_id, origin_path)
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key={"bucket": {"S": partition}, "key": {"S": path}},
                ConditionExpression="started_ms = :s",
                ExpressionAttributeValues={":s": {"N": str(receipt.started_ms)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def _batch_get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        wanted = [{"bucket": {"S": b}, "key": {"S": k}} for b, k in dict.fromkeys(keys)]
        found: dict[tuple[str, str], dict[str, Any]] = {}
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
                    found[(item["bucket"]["S"], item["key"]["S"])] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if attempt == UNPROCESSED_RETRIES:  # throttled throughout: let SQS retry
                    raise StateUnavailable(f"{len(request[self._table]['Keys'])} keys unread")
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # full jitter, as AWS advises
        return found

    def record(self, change: ObjectChange, state: KeyState) -> bool:
        """Remember `state` as of `change`; False when a newer event was recorded meanwhile."""
        sequencer = sortable_sequencer(change.sequencer)
        now = int(time.time())
        item: dict[str, Any] = {
            "bucket": {"S": change.bucket},
            "key": {"S": change.key},
            "sequencer": {"S": sequencer},
            "told": {"S": state.told.value},
            "told_etag": {"S": state.told_etag},
            "told_fingerprint": {"S": state.told_fingerprint},
            "told_version": {"S": state.told_version},
            "told_sequencer": {"S": state.told_sequencer},
            "told_fields": {"S": state.told_fields},
            "s3_present": {"BOOL": state.s3_present},
            "s3_etag": {"S": state.s3_etag},
            "s3_version": {"S": state.s3_version},
            "updated_at": {"N": str(now)},
        }
        if state.told is Told.PURGED and not state.s3_present:
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
