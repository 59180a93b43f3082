"""The state table: one batched read per SQS batch, and no lock or write for no-op events."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from imgix_autoadder.indexing.key_state import KeyState, Told
from imgix_autoadder.indexing.state import StateStore, StateUnavailable, sortable_sequencer
from imgix_autoadder.s3.events import ObjectChange
from localdev.provision import IDEMPOTENCY_TABLE
from tests.harness.events import failed_ids, notification, s3_record, sqs_event
from tests.harness.world import BUCKET, Invoke, Stack


def change(key: str, sequencer: str, etag: str = "e1") -> ObjectChange:
    return ObjectChange(
        bucket=BUCKET,
        key=key,
        removed=False,
        sequencer=sequencer,
        etag=etag,
        size=1,
        version_id="",
        event_name="ObjectCreated:Put",
        event_time="2026-11-23T09:00:00.000Z",
    )


def test_get_many_reads_past_the_100_key_limit_and_leaves_unknown_keys_out(stack: Stack):
    store = StateStore(boto3.client("dynamodb"), stack.local.state_table)
    for i in range(0, 150, 2):  # every other key has a state
        told = KeyState(sequencer="", told=Told.INDEXED, told_etag="e1")
        assert store.record(change(f"images/{i}.jpg", f"{i + 1:04X}"), told)

    found = store.get_many([(BUCKET, f"images/{i}.jpg") for i in range(150)] * 2)

    assert set(found) == {(BUCKET, f"images/{i}.jpg") for i in range(0, 150, 2)}
    assert found[(BUCKET, "images/4.jpg")].sequencer == sortable_sequencer("0005")
    assert found[(BUCKET, "images/4.jpg")].told is Told.INDEXED


def unprocessed_then(stubber: Stubber, table: str, rounds: int) -> None:
    key = {"bucket": {"S": BUCKET}, "key": {"S": "images/a.jpg"}}
    for _ in range(rounds):
        stubber.add_response(
            "batch_get_item",
            {"Responses": {table: []}, "UnprocessedKeys": {table: {"Keys": [key]}}},
        )


def test_unprocessed_keys_are_read_again_then_the_batch_is_retried(stack: Stack):
    client = boto3.client("dynamodb")
    table = stack.local.state_table
    item = {"bucket": {"S": BUCKET}, "key": {"S": "images/a.jpg"}, "etag": {"S": "e9"}}
    with Stubber(client) as stubber:  # DynamoDB throttling is what moto cannot do
        unprocessed_then(stubber, table, 2)
        stubber.add_response("batch_get_item", {"Responses": {table: [item]}})
        found = StateStore(client, table).get_many([(BUCKET, "images/a.jpg")])
        assert found[(BUCKET, "images/a.jpg")].etag == "e9"

        unprocessed_then(stubber, table, 5)
        with pytest.raises(StateUnavailable, match="1 keys unread"):
            StateStore(client, table).get_many([(BUCKET, "images/a.jpg")])


def idempotency_records() -> int:
    return int(boto3.client("dynamodb").scan(TableName=IDEMPOTENCY_TABLE)["Count"])


def test_a_stale_event_costs_no_lock_and_no_write(stack: Stack, invoke: Invoke):
    etag = stack.put("images/late.jpg")
    newer = notification(s3_record("ObjectCreated:Put", "images/late.jpg", etag, sequencer="0200"))
    older = notification(s3_record("ObjectCreated:Put", "images/late.jpg", etag, sequencer="0100"))
    invoke(sqs_event(newer))
    assert idempotency_records() == 1

    assert invoke(sqs_event(older)) == {"batchItemFailures": []}  # arrives late
    assert invoke(sqs_event(newer)) == {"batchItemFailures": []}  # delivered again

    assert idempotency_records() == 1
    assert len(stack.emulator.calls_to("add_asset")) == 1


def test_an_unreadable_state_table_retries_the_whole_batch(stack: Stack, invoke: Invoke):
    etag = stack.put("images/x.jpg")
    event = sqs_event(
        notification(s3_record("ObjectCreated:Put", "images/x.jpg", etag)),
        notification(s3_record("ObjectCreated:Put", "images/y.jpg", etag)),
    )
    boto3.client("dynamodb").delete_table(TableName=stack.local.state_table)

    response = invoke(event)  # every record goes back to SQS, as a partial response

    assert failed_ids(response) == {r["messageId"] for r in event["Records"]}
    assert stack.emulator.calls_to("add_asset") == []
