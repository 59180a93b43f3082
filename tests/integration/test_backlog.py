"""The indexer's end-of-invocation question to SQS (core/backlog.py): is its queue drained?
Asked with the indexer's own permissions, at most once per invocation, and only when the
answer decides whether its rate lanes go back (another environment leases lanes)."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from imgix_autoadder.core.backlog import Backlog
from imgix_autoadder.rate.budget import SharedRateLimiter
from localdev.provision import RATE_BUDGET_TABLE
from tests.harness.events import notification, s3_record, sqs_event
from tests.harness.world import FakeContext, Stack, load_function


def test_the_backlog_is_drained_when_no_message_is_visible_with_the_indexer_s_permissions(
    stack: Stack,
):
    url = stack.local.queue_url
    backlog = Backlog(lambda: stack.identities["IndexerFunction"].client("sqs"), url)
    assert backlog.drained()
    stack.sqs.send_message(QueueUrl=url, MessageBody="{}")
    assert not backlog.drained()
    stack.sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)  # a batch in flight
    assert backlog.drained()
    # When SQS cannot answer, the queue is not taken for drained: lanes are kept.
    assert not Backlog(
        lambda: stack.identities["IndexerFunction"].client("sqs"), url + "x"
    ).drained()


def leased_lanes(dynamodb: Any) -> int:
    item = dynamodb.get_item(TableName=RATE_BUDGET_TABLE, Key={"id": {"S": "default#default"}})
    now_ms = time.time() * 1000
    return sum(
        1
        for name, value in item["Item"].items()
        if name.startswith("u") and int(value["N"]) > now_ms
    )


def test_an_invocation_asks_sqs_once_and_only_when_the_answer_decides(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("IMGIX_DEFAULT_PER_SECOND", "4")  # the published limit, shared
    indexer = load_function("indexer")  # reads the limit at its cold start
    asked: list[str] = []
    stack.identities["IndexerFunction"].events.register(
        "before-call.sqs.GetQueueAttributes", lambda **_: asked.append("GetQueueAttributes")
    )

    def index(key: str) -> None:
        etag = stack.put(key)
        event = sqs_event(notification(s3_record("ObjectCreated:Put", key, etag)))
        assert indexer.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}

    dynamodb = boto3.client("dynamodb")
    index("images/alone.jpg")  # alone on the account: its lane is kept, SQS is not asked
    assert asked == [] and leased_lanes(dynamodb) >= 1  # (its lookup of the Source, its add)
    other = SharedRateLimiter(dynamodb, RATE_BUDGET_TABLE, "default", "default", 4.0)
    other.acquire()  # another environment leases a lane for its batch
    assert other.on_time()
    other.answered()
    stack.sqs.send_message(QueueUrl=stack.local.queue_url, MessageBody="{}")
    index("images/more-to-come.jpg")  # a next batch waits: the lanes stay for it
    assert asked == ["GetQueueAttributes"] and leased_lanes(dynamodb) >= 2
    stack.sqs.purge_queue(QueueUrl=stack.local.queue_url)
    index("images/last.jpg")  # its batch was the last: only the other's lease is left
    assert asked == ["GetQueueAttributes"] * 2 and leased_lanes(dynamodb) == 1
    assert len(stack.emulator.calls_to("add_asset")) == 3
