"""Turn one SQS message body into the S3 object changes it reports.

Accepted shapes: an S3 event notification (``Records``), the same wrapped in an SNS
envelope, an EventBridge ``aws.s3`` event (existing buckets), and ``s3:TestEvent``.
Anything else is a poison record: it raises PoisonRecord with a reason for the DLQ.

Tag changes (``ObjectTagging:Put``/``:Delete``; EventBridge "Object Tags Added"/"Deleted")
are changes too, for TAG_FIELDS: S3 gives them no sequencer ("only used with PUTs and
DELETEs", AWS's "Event message structure"), so they cannot be ordered against the key's
other events; they only say "read the key's tags again" (indexing/fields.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent

SEQUENCER_WIDTH = 64
MAX_KEY_BYTES = 1024  # S3's own limit: a longer key cannot be real
# What SNS sends an SQS subscriber besides notifications (SNS Developer Guide, "HTTP/S").
SNS_HANDSHAKES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")
# The notification event names the indexer acts on (the rest: restore, ACL, replication).
NOTIFIED = ("ObjectCreated:", "ObjectRemoved:", "LifecycleExpiration:", "ObjectTagging:")
TAG_DETAIL_TYPES = ("Object Tags Added", "Object Tags Deleted")


class PoisonRecord(ValueError):
    """A record that no retry can fix; it goes to the DLQ with this message as the reason."""


class SubscriptionHandshake(PoisonRecord):
    """SNS asks a person to confirm (or says it cancelled) the queue's subscription to a
    topic: nothing to index, but until someone confirms it, the topic's events never come.

    The product never fetches the SubscribeURL (that would let anyone who can publish to
    the queue subscribe it to their topic). The message goes to the DLQ, where its token
    waits for the operator, with this reason."""

    def __init__(self, kind: str, topic_arn: str) -> None:
        self.kind = kind
        self.topic_arn = topic_arn
        action = (
            "confirm it (aws sns confirm-subscription --topic-arn TOPIC --token TOKEN, both "
            "in this message) if you expect this topic's events"
            if kind == "SubscriptionConfirmation"
            else "the subscription was removed; subscribe the queue again if that was a mistake"
        )
        super().__init__(f"SNS {kind} for topic {topic_arn}: {action}")


@dataclass(frozen=True)
class ObjectChange:
    bucket: str
    key: str
    removed: bool
    sequencer: str
    etag: str
    size: int | None
    version_id: str
    event_name: str
    event_time: str
    # An EventBridge key may or may not be URL-encoded (AWS's event-structure page does not
    # say): then both readings are handled, and S3 or the state table says which is real.
    ambiguous_key: bool = False
    other_reading: str = ""  # the other reading of an ambiguous key
    tags_only: bool = False  # a tag change: the object itself is the same

    @property
    def is_folder_marker(self) -> bool:
        return self.key.endswith("/")

    def order(self) -> tuple[int, str]:
        """Sort key: S3's sequencer (hex, compare as a number), then event time."""
        return (sequencer_value(self.sequencer), self.event_time)


def sequencer_value(sequencer: str) -> int:
    """AWS: left-pad the shorter hex sequencer with zeros, then compare; as ints that is <.

    An event without a sequencer (moto, some replays) sorts before any that has one.
    """
    return int(sequencer, 16) if sequencer else -1


def sortable_sequencer(sequencer: str) -> str:
    """AWS documents: left-pad with zeros to equal length, then compare as strings."""
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0") if sequencer else ""


def decode_key(raw: str) -> str:
    """S3 URL-encodes keys in notifications, '+' for space; reject what cannot decode."""
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise PoisonRecord(f"object key {raw[:80]!r} has %-sequences that are not UTF-8") from exc
    if not key:
        raise PoisonRecord("object key is empty")
    try:
        size = len(key.encode())
    except UnicodeEncodeError as exc:  # a lone surrogate from a \ud800 JSON escape
        raise PoisonRecord(f"object key {key[:80]!r} is not valid Unicode") from exc
    if size > MAX_KEY_BYTES:
        raise PoisonRecord(f"object key is {size} bytes, over S3's 1024")
    return key


def parse_message_body(body: str) -> list[ObjectChange]:
    """All object changes in one SQS body; [] for test events and event types we ignore."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise PoisonRecord(f"message body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise PoisonRecord("message body is JSON nested too deeply to be an event") from exc
    if not isinstance(document, dict):
        raise PoisonRecord(f"message body is a JSON {type(document).__name__}, not an object")

    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return parse_message_body(document["Message"])  # S3 -> SNS -> SQS
    if document.get("Type") in SNS_HANDSHAKES:
        raise SubscriptionHandshake(str(document["Type"]), str(document.get("TopicArn", "?"))[:256])
    if document.get("Event") == "s3:TestEvent":
        return []
    if "Records" in document:
        return _from_notification(document)
    if document.get("source") == "aws.s3" and "detail" in document:
        return _from_eventbridge(document)
    raise PoisonRecord(f"unknown event shape with keys {sorted(document)[:8]}")


def _from_notification(document: dict[str, Any]) -> list[ObjectChange]:
    records = document["Records"]
    if not isinstance(records, list):
        raise PoisonRecord("Records is not a list")
    changes = []
    for index, record in enumerate(S3Event(document).records):
        try:
            name = str(record.event_name)
            if not name.startswith(NOTIFIED):
                continue  # restore, ACL, replication: nothing for imgix to do
            obj = record.s3.get_object
            changes.append(
                ObjectChange(
                    bucket=_text(record.s3.bucket.name, "bucket name"),
                    key=decode_key(_text(obj["key"], "object key")),
                    removed=name.startswith(("ObjectRemoved:", "LifecycleExpiration:")),
                    sequencer=_hex(obj.get("sequencer")),
                    etag=str(obj.get("eTag") or ""),
                    size=_size(obj.get("size")),
                    version_id=str(obj.get("versionId") or ""),
                    event_name=name,
                    event_time=str(record.get("eventTime") or ""),
                    tags_only=name.startswith("ObjectTagging:"),
                )
            )
        except PoisonRecord as exc:
            raise PoisonRecord(f"Records[{index}]: {exc}") from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise PoisonRecord(f"Records[{index}] lacks a required field: {exc!r}") from exc
    return changes


def _from_eventbridge(document: dict[str, Any]) -> list[ObjectChange]:
    event = S3EventBridgeNotificationEvent(document)
    kind = document.get("detail-type")
    if kind not in ("Object Created", "Object Deleted", *TAG_DETAIL_TYPES):
        return []
    try:
        detail = event.detail
        obj = document["detail"]["object"]
        raw = _text(obj["key"], "object key")
        change = ObjectChange(
            bucket=_text(detail.bucket.name, "bucket name"),
            key=_key_as_given(raw),
            removed=kind == "Object Deleted",
            sequencer=_hex(obj.get("sequencer")),
            etag=str(obj.get("etag") or ""),
            size=_size(obj.get("size")),
            version_id=str(obj.get("version-id") or ""),
            event_name=f"EventBridge:{kind}:{detail.get('reason', '')}",
            event_time=str(document.get("time") or ""),
            tags_only=kind in TAG_DETAIL_TYPES,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PoisonRecord(f"EventBridge detail lacks a required field: {exc!r}") from exc
    try:
        decoded = decode_key(raw)
    except PoisonRecord:
        decoded = change.key  # not a valid encoding: the key as given is the only reading
    if decoded == change.key:
        return [change]
    return [
        replace(change, ambiguous_key=True, other_reading=decoded),
        replace(change, key=decoded, ambiguous_key=True, other_reading=change.key),
    ]


def _key_as_given(raw: str) -> str:
    if "\x00" in raw or len(raw.encode("utf-8", errors="replace")) > MAX_KEY_BYTES:
        raise PoisonRecord(f"object key {raw[:80]!r} cannot be an S3 key")
    try:
        raw.encode()
    except UnicodeEncodeError as exc:
        raise PoisonRecord(f"object key {raw[:80]!r} is not valid Unicode") from exc
    return raw


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PoisonRecord(f"{what} must be a non-empty string, got {type(value).__name__}")
    return value


def _hex(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise PoisonRecord(f"sequencer must be a hex string, got {type(value).__name__}")
    try:
        int(value, 16)
    except ValueError as exc:
        raise PoisonRecord(f"sequencer {value[:40]!r} is not hexadecimal") from exc
    return value.upper()


def _size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PoisonRecord(f"object size {value!r} is not a non-negative integer")
    return value


def misdirected_source(event: dict[str, Any]) -> str:
    """The service that invoked the function straight, skipping the queue ('' for SQS).

    The function reads its SQS queue; an S3, SNS or EventBridge trigger pointed at it by
    mistake would otherwise look like an empty batch, and its events would be lost."""
    if event.get("source") == "aws.s3" and "detail" in event:
        return "EventBridge"
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return ""
    first = records[0]
    if first.get("eventSource") == "aws:s3":
        return "S3"
    if first.get("EventSource") == "aws:sns":
        return "SNS"
    return ""


def age_s(event_time: str, now: float) -> float | None:
    """Seconds from an event's time (S3's ISO 8601 `eventTime`, EventBridge's `time`) to
    `now` (epoch seconds); None when the event carries no readable time."""
    try:
        at = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(0.0, now - at.timestamp())
