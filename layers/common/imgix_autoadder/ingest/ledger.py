"""What the ingest has done, kept in the state table beside the origin bucket's keys.

Two kinds of item, under partition keys that no S3 bucket name can have (they hold '#'):

- order claims, ("ingest#<ingest bucket>", key): the newest ingest event (by S3 sequencer)
  that was uploaded, or handed to an upload session, for the key. S3 alone cannot order the
  ingest: once the newest version is uploaded and deleted (IngestDisposition=delete), the
  older version is current again, and its late event would pass any check of S3.
- upload receipts, ("upload#<source id>", origin path): what the product handed imgix
  (size, MD5 when known, when). imgix writes an uploaded file into the origin bucket itself
  and indexes it; the indexer recognises that origin object by its receipt and spends no
  imgix call on it (an add or refresh would only repeat what the upload did).

The decisions are the pure functions `is_superseded` and `written_by_upload`.

What the claim cannot order: two router environments uploading two versions of one key
directly at the same moment, or an older version's upload session whose PUT was already
made (imgix processes it, closed or not) finishing after a newer direct upload. imgix
offers no compare-and-set on an upload; both windows are short (the router runs at most 2
environments; a session re-checks the claim just before its PUT).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgix_autoadder.s3.events import sortable_sequencer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from imgix_autoadder.s3.origin import Current

CLAIM_PARTITION = "ingest#"
RECEIPT_PARTITION = "upload#"
# A receipt outlives the longest upload: a session stays open 8 hours (Asset Manager,
# "Uploading with Upload Sessions"), then imgix processes and writes the file.
RECEIPT_TTL_S = 9 * 3600
CLAIM_TTL_S = 30 * 24 * 3600  # an event older than this is long past SQS's retention
# imgix stamps the origin object after the upload began; S3's LastModified has whole
# seconds, and the two clocks are AWS's and imgix's: allow this much between them.
CLOCK_SKEW_MS = 60_000


@dataclass(frozen=True)
class Receipt:
    """The bytes the product handed imgix for one Source's origin path."""

    size: int
    md5: str  # '' for upload sessions: the bytes are streamed, never held
    started_ms: int


def is_superseded(claimed: str, sequencer: str) -> bool:
    """A newer ingest event of this key was uploaded or started already."""
    if not claimed or not sequencer:
        return False  # no sequencer (replays, moto): S3 itself is the only judge
    return sortable_sequencer(sequencer) < claimed


def written_by_upload(receipt: Receipt | None, now: Current) -> bool:
    """The origin object is the one imgix wrote for the product's upload.

    Same size, and either the same MD5 (S3's ETag of a single-part, non-KMS object) or,
    where the ETag cannot be compared (multipart, SSE-KMS), written after the upload began.
    """
    if receipt is None or not now.exists or now.size != receipt.size:
        return False
    if receipt.md5 and now.etag == receipt.md5:
        return True
    comparable = len(now.etag) == 32 and "-" not in now.etag
    if receipt.md5 and comparable and not now.kms_encrypted:
        return False  # an MD5 ETag of other bytes: someone else's object
    return now.last_modified_ms >= receipt.started_ms - CLOCK_SKEW_MS


def receipt_key(source_id: str, origin_path: str) -> tuple[str, str]:
    return RECEIPT_PARTITION + source_id, origin_path


def receipt_of(item: dict[str, Any]) -> Receipt:
    return Receipt(
        size=int(item["size"]["N"]),
        md5=str(item.get("md5", {}).get("S", "")),
        started_ms=int(item["started_ms"]["N"]),
    )


class IngestLedger:
    """Order claims and upload receipts, on the low-level DynamoDB client."""

    def __init__(
        self, dynamodb: DynamoDBClient, table: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._clock = clock

    def claim(self, bucket: str, key: str, sequencer: str) -> bool:
        """Record this event as the newest handled for the ingest key; False when a newer
        one was (the same event again may claim again: a retry after a failure)."""
        if not sequencer:
            return True
        now = int(self._clock())
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "bucket": {"S": CLAIM_PARTITION + bucket},
                    "key": {"S": key},
                    "sequencer": {"S": sortable_sequencer(sequencer)},
                    "updated_at": {"N": str(now)},
                    "expires_at": {"N": str(now + CLAIM_TTL_S)},
                },
                ConditionExpression="attribute_not_exists(#k) OR #s <= :s",
                ExpressionAttributeNames={"#k": "key", "#s": "sequencer"},
                ExpressionAttributeValues={":s": {"S": sortable_sequencer(sequencer)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claimed(self, bucket: str, key: str) -> str:
        """The sortable sequencer of the newest ingest event claimed for the key ('')."""
        item = self._ddb.get_item(
            TableName=self._table,
            Key={"bucket": {"S": CLAIM_PARTITION + bucket}, "key": {"S": key}},
            ConsistentRead=True,
        ).get("Item")
        return str(item["sequencer"]["S"]) if item else ""

    def expect_upload(self, source_id: str, origin_path: str, size: int, md5: str = "") -> None:
        """Written before imgix is handed the bytes, so that it exists before imgix writes
        the origin object (and before that object's event can reach the indexer)."""
        now = self._clock()
        partition, path = receipt_key(source_id, origin_path)
        item = {
            "bucket": {"S": partition},
            "key": {"S": path},
            "size": {"N": str(size)},
            "started_ms": {"N": str(int(now * 1000))},
            "expires_at": {"N": str(int(now) + RECEIPT_TTL_S)},
        }
        if md5:
            item["md5"] = {"S": md5}
        self._ddb.put_item(TableName=self._table, Item=item)

    def forget_upload(self, source_id: str, origin_path: str) -> None:
        """The upload failed: imgix writes nothing, so nothing may be mistaken for it."""
        partition, path = receipt_key(source_id, origin_path)
        self._ddb.delete_item(
            TableName=self._table, Key={"bucket": {"S": partition}, "key": {"S": path}}
        )
