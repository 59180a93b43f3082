"""Whether the events queue is drained (holds no message that no invocation has received):
asked at the end of an invocation (core/invocation.py) when the answer decides something,
so that an environment whose batch was the last for now gives its rate lanes to those
still working, rather than keep them for a next batch that may not come."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class Backlog:
    """SQS's ApproximateNumberOfMessages: the visible messages (neither in flight nor
    delayed). The role SAM gives an SQS-triggered function allows GetQueueAttributes
    (AWSLambdaSQSQueueExecutionRole)."""

    def __init__(self, make_sqs_client: Callable[[], SQSClient], queue_url: str) -> None:
        self._make_sqs_client = make_sqs_client
        self._url = queue_url

    def drained(self) -> bool:
        """False when SQS cannot say (an error): then lanes are kept, as without it."""
        try:
            attributes = self._make_sqs_client().get_queue_attributes(
                QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except Exception:
            return False
        return attributes.get("ApproximateNumberOfMessages") == "0"
