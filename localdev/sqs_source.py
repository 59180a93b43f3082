"""What Lambda's SQS event source mapping does, for the local run and the tests.

Receive up to 10 messages, hand them to the handler as Lambda's SQS event, delete the
ones not reported in batchItemFailures, and make the failed ones visible again (after
maxReceiveCount SQS moves them to the DLQ by the queue's redrive policy).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class DrainStats:
    invocations: int = 0
    delivered: int = 0
    deleted: int = 0
    failed: int = 0
    invocation_errors: int = 0
    errors: list[str] = field(default_factory=list)


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody")
                or hashlib.md5(m["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def drain(
    sqs: Any,
    queue_url: str,
    handler: Handler,
    context: Any,
    batch_size: int = 10,
    max_invocations: int = 10_000,
    wait_for_delayed_s: float = 120.0,
) -> DrainStats:
    """Deliver until the queue is empty (failed records are retried until redriven).

    Records the handler deferred come back delayed: the drain waits for them too, up to
    `wait_for_delayed_s` in all."""
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    region = queue_arn.split(":")[3]
    stats = DrainStats()
    give_up = time.monotonic() + wait_for_delayed_s
    while stats.invocations < max_invocations:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=30,
        ).get("Messages", [])
        if not messages:
            pending = sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessagesDelayed",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            waiting = sum(int(v) for v in pending.values())
            if not waiting or time.monotonic() > give_up:
                return stats
            time.sleep(0.5)
            continue
        stats.invocations += 1
        stats.delivered += len(messages)
        try:
            response = handler(lambda_sqs_event(messages, queue_arn, region), context)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as exc:
            stats.invocation_errors += 1
            stats.errors.append(repr(exc)[:300])
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        stats.deleted += len(done)
        stats.failed += len(failed)
        for m in messages:
            if m["MessageId"] in failed:  # visible again now, as after the timeout
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
    return stats
