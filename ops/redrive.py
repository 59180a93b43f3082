"""Move dead-lettered events back to the events queue, after the cause is fixed.

    python -m ops redrive --dlq-url URL --queue-url URL [--dry-run] [--reason-contains TEXT]

Lists each message's FailureReason (the indexer's own DLQ sends carry one; messages that
SQS moved after maxReceiveCount do not). A message is sent back before it is deleted from
the DLQ, so an interruption can duplicate one (harmless: events are idempotent), never lose
one. A dry run only lists; the messages become visible again at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

from ops import command_parser

NO_REASON = "(moved by SQS after maxReceiveCount)"


@dataclass
class RedriveReport:
    moved: int = 0
    left: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def redrive(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    dry_run: bool = False,
    reason_contains: str | None = None,
    limit: int | None = None,
) -> RedriveReport:
    report, seen = RedriveReport(), set()
    untouched: list[str] = []  # receipt handles to make visible again
    while limit is None or report.moved < limit:
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=120,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            untouched += [m["ReceiptHandle"] for m in messages]
            break
        for message in fresh:
            seen.add(message["MessageId"])
            attributes = message.get("MessageAttributes", {})
            reason = attributes.get("FailureReason", {}).get("StringValue", NO_REASON)
            report.reasons[reason] += 1
            wanted = reason_contains is None or reason_contains in reason
            if dry_run or not wanted or (limit is not None and report.moved >= limit):
                report.left += 1
                untouched.append(message["ReceiptHandle"])
                continue
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            report.moved += 1
    for handle in untouched:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("redrive", __doc__)
    parser.add_argument("--dlq-url", required=True, help="the stack's DeadLetterQueueUrl output")
    parser.add_argument("--queue-url", required=True, help="the stack's EventsQueueUrl output")
    parser.add_argument("--dry-run", action="store_true", help="only list the reasons")
    parser.add_argument("--reason-contains", help="move only messages whose reason has this")
    parser.add_argument("--limit", type=int, help="move at most this many")
    args = parser.parse_args(argv)
    report = redrive(
        boto3.client("sqs"),
        args.dlq_url,
        args.queue_url,
        args.dry_run,
        args.reason_contains,
        args.limit,
    )
    for reason, count in report.reasons.most_common():
        print(f"{count:6}  {reason}")
    print(
        f"moved {report.moved}, left in the DLQ {report.left}"
        + (" (dry run)" if args.dry_run else "")
    )
    return 0
