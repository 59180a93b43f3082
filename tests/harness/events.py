"""Real-shaped events: S3 notification records (as AWS documents them), SQS batches as the
event source mapping delivers them, and what moto holds in a queue."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any
from urllib.parse import quote_plus

from localdev.provision import EVENTS_QUEUE
from tests.harness.world import BUCKET, EVENTS, REGION

# -- real-shaped events ---------------------------------------------------------------------
_sequence = [0x0055AED6DCD9000000]


def next_sequencer() -> str:
    _sequence[0] += 0x100
    return f"{_sequence[0]:018X}"


def s3_record(
    event_name: str,
    key: str,
    etag: str = "",
    size: int | None = None,
    sequencer: str | None = None,
    bucket: str = BUCKET,
    version_id: str | None = None,
) -> dict[str, Any]:
    """One S3 notification record, key URL-encoded exactly as S3 sends it."""
    template = json.loads(
        (
            EVENTS / ("s3-delete.json" if event_name.startswith("ObjectRemoved") else "s3-put.json")
        ).read_text()
    )["Records"][0]
    template["eventName"] = event_name
    template["s3"]["bucket"]["name"] = bucket
    template["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "sequencer": sequencer or next_sequencer(),
    }
    if not event_name.startswith("ObjectRemoved"):
        obj.update(size=size if size is not None else 11, eTag=etag or "0" * 32)
    if version_id is not None:  # S3 adds it for a versioned bucket, after eTag
        obj["versionId"] = version_id
        obj["sequencer"] = obj.pop("sequencer")
    template["s3"]["object"] = obj
    return dict(template)


def notification(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def sqs_event(*bodies: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for these message bodies."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795424400000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795424400010",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:imgix-autoadder-events",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def queued(name: str = EVENTS_QUEUE) -> list[Any]:
    """A queue's messages as moto holds them, delayed ones included: what a deferral sent
    back to the queue (DelaySeconds hides it from ReceiveMessage for a while)."""
    from moto.sqs.models import sqs_backends

    return list(sqs_backends["123456789012"][REGION].queues[name]._messages)


def take_queued(name: str = EVENTS_QUEUE) -> list[str]:
    """The bodies of every message in a queue, delayed ones included, taken out of it: what
    SQS would deliver once their delays are over."""
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"][REGION].queues[name]
    bodies = [message.body for message in queue._messages]
    queue._messages.clear()
    return bodies


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}
