"""Send a record that no retry can fix to the DLQ, with the reason attached."""

from __future__ import annotations

from typing import Any

MAX_REASON = 1000


class DeadLetterQueue:
    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._url = queue_url

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
