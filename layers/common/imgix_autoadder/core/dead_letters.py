"""Where records go that this invocation does not finish: the DLQ with a reason, or back
to the events queue with a delay (which, unlike a batch item failure, spends no receive)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from imgix_autoadder.core.limits import SQS_MAX_DELAY_S

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_REASON = 1000


class _Queue:
    def __init__(self, make_sqs_client: Callable[[], SQSClient], queue_url: str) -> None:
        # Made on first use: most invocations send nothing, and a client costs tens of
        # milliseconds.
        self._make_sqs_client = make_sqs_client
        self._url = queue_url

    @cached_property
    def _sqs(self) -> SQSClient:
        return self._make_sqs_client()


class DeadLetterQueue(_Queue):
    def send(self, body: str, reason: str, origin_message_id: str) -> None:
        """Raises on failure: the caller must then keep the record for retry, never drop it."""
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=body if body else "(empty body)",
            MessageAttributes={
                "FailureReason": {"DataType": "String", "StringValue": reason[:MAX_REASON]},
                "OriginMessageId": {"DataType": "String", "StringValue": origin_message_id},
            },
        )


class Redelivery(_Queue):
    """Sends a record's body to its own queue again, delayed: the new message starts with a
    receive count of 0, so waiting for imgix's rate limit or a key rotation never walks a
    record towards the DLQ."""

    def send(self, body: str, delay_s: float, reason: str, origin_message_id: str) -> int:
        """Raises on failure (the caller then fails the record back instead). Returns the delay."""
        # A little jitter, so records deferred together do not all return in one second.
        delay = min(SQS_MAX_DELAY_S, max(1, math.ceil(delay_s + random.uniform(0, 2))))
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=body,
            DelaySeconds=delay,
            MessageAttributes={
                "DeferredReason": {"DataType": "String", "StringValue": reason[:MAX_REASON]},
                "OriginMessageId": {"DataType": "String", "StringValue": origin_message_id},
            },
        )
        return delay
