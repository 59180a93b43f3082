"""Send a record that no retry can fix to the DLQ, with the reason attached."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

MAX_REASON = 1000


class DeadLetterQueue:
    def __init__(self, make_sqs_client: Callable[[], Any], queue_url: str) -> None:
        # Made on first use: most invocations dead-letter nothing, and a client costs
        # tens of milliseconds of cold start.
        self._make_sqs_client = make_sqs_client
        self._url = queue_url

    @cached_property
    def _sqs(self) -> Any:
        return self._make_sqs_client()

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
