"""Backfill: the real Distributed Map definition on moto indexes a bucket's existing objects."""

from __future__ import annotations

import boto3
import pytest

from localdev.imgix_emulator import PUBLISHED_LIMITS
from ops.backfill import progress, start, wait
from tests.harness.events import notification, s3_record
from tests.harness.machines import state_machine
from tests.harness.world import BUCKET, Stack, load_function


@pytest.mark.long(20)
def test_backfill_indexes_existing_objects_within_the_rate_limits(
    stack: Stack, invoke, monkeypatch: pytest.MonkeyPatch
):
    keys = [f"images/old/{i:03d}.jpg" for i in range(60)]
    for key in keys:
        stack.put(key, key.encode())
    stack.put("images/old/folder/", b"")
    for key in ("docs/readme.txt", "imagesX/not-mine.jpg"):
        stack.put(key)
    # One object the indexer already knows (same ETag: no call), one that changed since.
    invoke_known = notification(
        s3_record("ObjectCreated:Put", keys[0], stack.put(keys[0], keys[0].encode()))
    )
    invoke(
        {
            "Records": [
                {
                    "messageId": "m",
                    "body": invoke_known,
                    "receiptHandle": "r",
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                    "awsRegion": "us-east-1",
                }
            ]
        }
    )
    stack.emulator.reset_calls()

    # imgix's published default limit, raised 25x so the test takes seconds, paced at 90%.
    stack.emulator.rate_limits = {"default": (PUBLISHED_LIMITS["default"][0] * 25, 1.0)}
    monkeypatch.setenv("IMGIX_DEFAULT_PER_SECOND", str(100 * 0.9))
    backfill = load_function("backfill")
    machine = state_machine(
        monkeypatch, "backfill", "backfill.asl.json", "BackfillFunctionArn", backfill
    )
    sfn = boto3.client("stepfunctions")

    execution = start(sfn, machine, BUCKET, "images/")
    reports: list[dict] = []
    final = wait(sfn, execution, reports.append, interval_s=0.2, timeout_s=240)

    assert final["status"] == "SUCCEEDED", final
    assert reports and reports[0]["status"] in ("RUNNING", "SUCCEEDED")
    added = {c.origin_path for c in stack.emulator.calls_to("add_asset") if c.status == 200}
    assert added == {k[len("images/") :] for k in keys[1:]}  # keys[0] was already indexed
    assert [c.status for c in stack.emulator.calls if c.status == 429] == []
    assert stack.emulator.calls_to("refresh_asset") == []
    assert progress(sfn, execution)["status"] == "SUCCEEDED"
    table = boto3.resource("dynamodb").Table(stack.local.state_table)
    assert table.get_item(Key={"bucket": BUCKET, "key": keys[-1]})["Item"]["told"] == "indexed"

    # A second run finds everything known: no calls at all.
    stack.emulator.reset_calls()
    second = wait(sfn, start(sfn, machine, BUCKET, "images/"), lambda _: None, 0.2, 240)
    assert second["status"] == "SUCCEEDED"
    assert [c.route for c in stack.emulator.calls] == []


def test_a_cold_backfill_environment_indexes_its_first_object_on_the_shared_budget(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    """Its own cold-start Source read takes the shared default slot; the first add then
    waits for the next one (nobody else wants it) instead of failing the item."""
    from tests.harness.world import FakeContext

    monkeypatch.setenv("RATE_BUDGET_IDLE_ONLY", "true")  # as template.yaml sets it
    monkeypatch.setenv("IMGIX_DEFAULT_PER_SECOND", "4")  # the published limit, shared
    stack.put("images/first.jpg", b"first")
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="images/")["Contents"][0]
    event = {"bucket": BUCKET, "object": {**listed, "LastModified": str(listed["LastModified"])}}

    outcome = load_function("backfill").lambda_handler(event, FakeContext())

    assert outcome == {"outcome": "done: add"}
    assert [c.route for c in stack.emulator.calls] == ["get_source", "add_asset"]
