"""redrive: dead-lettered events go back to the queue and are then indexed."""

from __future__ import annotations

from localdev.imgix_emulator import ALL_PERMISSIONS
from localdev.sqs_source import drain
from ops.redrive import NO_REASON, redrive
from tests.harness.events import notification, s3_record, sqs_event
from tests.harness.world import API_KEY, FakeContext, Stack


def test_redrive_lists_reasons_then_moves_and_the_events_get_indexed(stack: Stack, indexer):
    etag = stack.put("images/later.jpg")
    stack.emulator.api_keys[API_KEY] = frozenset({"sources"})  # a misconfigured key: 403
    event = sqs_event(notification(s3_record("ObjectCreated:Put", "images/later.jpg", etag)))
    indexer.lambda_handler(event, FakeContext())
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody="moved by SQS itself")

    listed = redrive(stack.sqs, stack.dlq_url, stack.local.queue_url, dry_run=True)
    assert listed.moved == 0 and listed.left == 2
    assert listed.reasons[NO_REASON] == 1
    [reason] = [r for r in listed.reasons if r != NO_REASON]
    assert "403" in reason

    # The operator fixes the key's permissions and moves only the imgix failures back.
    stack.emulator.api_keys[API_KEY] = ALL_PERMISSIONS
    moved = redrive(stack.sqs, stack.dlq_url, stack.local.queue_url, reason_contains="403")
    assert (moved.moved, moved.left) == (1, 1)

    stats = drain(stack.sqs, stack.local.queue_url, indexer.lambda_handler, FakeContext())
    assert stats.deleted == 1
    assert (stack.source_id, "later.jpg") in stack.emulator.assets
    [remaining] = stack.dlq_messages()
    assert remaining["Body"] == "moved by SQS itself"
