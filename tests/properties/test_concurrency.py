"""Concurrent deliveries, forced deterministically rather than left to timing."""

from __future__ import annotations

import sys
import threading
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tests.harness.events import notification, queued, s3_record, sqs_event
from tests.harness.world import FakeContext, Stack


def test_a_concurrent_duplicate_is_deferred_while_the_first_holds_the_lock(
    stack: Stack, indexer: Any
):
    """Powertools Idempotency documents IdempotencyAlreadyInProgressError for a second
    call while the first is in flight. Here the first delivery is held inside its imgix
    call until the second has been handled, so the overlap is certain, not likely."""
    body = notification(
        s3_record("ObjectCreated:Put", "images/dup.jpg", stack.put("images/dup.jpg"))
    )
    inside, release = threading.Event(), threading.Event()

    def hold_first_add(call: Any) -> None:
        if call.route == "add_asset" and not inside.is_set():
            inside.set()
            release.wait(30)

    stack.emulator.on_request = hold_first_add
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(indexer.lambda_handler(sqs_event(body), FakeContext()))
    )
    worker.start()
    assert inside.wait(30)

    second = indexer.lambda_handler(sqs_event(body), FakeContext())
    release.set()
    worker.join(30)

    assert first == {"batchItemFailures": []}
    assert second == {"batchItemFailures": []}  # no receive spent: deferred a few seconds
    [held] = queued()
    reason = held.message_attributes["DeferredReason"]["StringValue"]
    assert reason == "another invocation is handling this event"
    assert len(stack.emulator.calls_to("add_asset")) == 1
    assert stack.dlq_messages() == []


def test_conditional_writes_are_atomic_across_threads(stack: Stack):
    """What DynamoDB guarantees and the idempotency lock relies on: of many concurrent
    conditional puts of one new item, exactly one succeeds. moto's in-process backend does
    not lock (this fails about one round in three without tests/harness/template_iam.py's lock),
    which is how two deliveries of one event could both pass Idempotency."""
    dynamodb = boto3.client("dynamodb")

    def race(key: str) -> list[str]:
        outcomes: list[str] = []
        start = threading.Barrier(12)

        def put() -> None:
            start.wait()
            try:
                dynamodb.put_item(
                    TableName=stack.local.state_table,
                    Item={"bucket": {"S": "b"}, "key": {"S": key}},
                    ConditionExpression="attribute_not_exists(#k)",
                    ExpressionAttributeNames={"#k": "key"},
                )
                outcomes.append("won")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])

        threads = [threading.Thread(target=put) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sorted(outcomes)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races surface
    try:
        rounds = [race(f"k{i}") for i in range(10)]
    finally:
        sys.setswitchinterval(switch)
    assert all(r == ["ConditionalCheckFailedException"] * 11 + ["won"] for r in rounds)
