"""Fault injection: 1,000+ S3 events, 20% of imgix calls fail; nothing lost, nothing reordered.

S3 operations run on moto; their events (S3-shaped, with per-key sequencers) are delivered
at least once and out of order through SQS to the real handler, drained as Lambda's event
source mapping does. Afterwards every key's state at imgix must match S3 and every message
must be accounted for: processed, or in the DLQ with a reason.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import boto3
import pytest

from imgix_autoadder.core.dead_letters import Redelivery
from localdev.imgix_emulator import FAULT_KINDS
from localdev.sqs_source import drain
from tests.harness.events import notification, s3_record
from tests.harness.world import BUCKET, DOMAINS, PREFIX, FakeContext, Stack

EVENTS = 1000
KEYS = 220
FAULT_RATE = 0.2
# A scripted timeout costs the client its whole read timeout: a shorter one here (the
# emulator still holds the answer twice as long) keeps 20 of them from setting the pace. A
# call the loaded machine makes slower than this is one more timeout, which the test allows.
READ_TIMEOUT_S = 1.0


@pytest.fixture
def stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("HTTP_READ_TIMEOUT", str(READ_TIMEOUT_S))
    stack.emulator.timeout_delay_s = 2 * READ_TIMEOUT_S
    return stack


@pytest.mark.long(80)
def test_1000_events_with_20_percent_faults_lose_and_reorder_nothing(
    stack: Stack,
    indexer: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    rng = random.Random(7)
    s3, sqs, emulator = stack.s3, stack.sqs, stack.emulator
    keys = [f"{PREFIX}/fault/{i:03d} {'é' if i % 7 == 0 else ''}.jpg" for i in range(KEYS)]
    exists: dict[str, str] = {}  # key -> current ETag in S3
    last_sequencer: dict[str, int] = {}
    bodies: list[str] = []
    sequencer = 0x00A0000000000000

    for _ in range(EVENTS):
        key = rng.choice(keys)
        sequencer += rng.randint(1, 50)
        if key in exists and rng.random() < 0.35:
            s3.delete_object(Bucket=BUCKET, Key=key)
            del exists[key]
            record = s3_record("ObjectRemoved:Delete", key, sequencer=f"{sequencer:X}")
        else:
            body = f"{key} @ {sequencer}".encode()
            etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
            exists[key] = etag
            record = s3_record(
                "ObjectCreated:Put", key, etag, len(body), sequencer=f"{sequencer:X}"
            )
        last_sequencer[key] = sequencer
        bodies.append(notification(record))

    # At least once, out of order: 5% duplicated, then shuffled within windows of 60.
    delivered = bodies + [b for b in bodies if rng.random() < 0.05]
    rng.shuffle(delivered)
    for start in range(0, len(delivered), 10):
        sqs.send_message_batch(
            QueueUrl=stack.local.queue_url,
            Entries=[
                {"Id": str(i), "MessageBody": body}
                for i, body in enumerate(delivered[start : start + 10])
            ],
        )

    # A deferred record goes back to the queue as a new message (the stack's breaker may
    # open when faults come in a row, and a 429 may outlast the client's retries): count
    # them, so that every message the drain deletes is accounted for.
    deferred: list[str] = []
    send = Redelivery.send

    def counted_send(self: Redelivery, body: str, *args: Any, **kw: Any) -> int:
        delay = send(self, body, *args, **kw)
        deferred.append(body)
        return delay

    monkeypatch.setattr(Redelivery, "send", counted_send)
    emulator.faults.randomly(
        FAULT_RATE, FAULT_KINDS, seed=11, routes={"add_asset", "refresh_asset", "purge"}
    )
    stats = drain(sqs, stack.local.queue_url, indexer.lambda_handler, FakeContext())
    emulator.faults.clear()

    # -- accounting: every delivered message is processed or dead-lettered with a reason ---
    dead: list[dict[str, Any]] = []
    while batch := stack.dlq_messages():
        dead += batch
        sqs.delete_message_batch(
            QueueUrl=stack.dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
    left = sqs.get_queue_attributes(
        QueueUrl=stack.local.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    reasons = Counter(
        m.get("MessageAttributes", {}).get("FailureReason", {}).get("StringValue", "(redrive)")
        for m in dead
    )

    # -- final state: imgix matches S3 for every key, and reflects its newest event -------
    table = boto3.resource("dynamodb").Table(stack.local.state_table)
    lost, reordered = [], []
    calls = emulator.calls
    for key in keys:
        if key not in last_sequencer:
            continue
        path = key[len(PREFIX) + 1 :]
        asset = emulator.assets.get((stack.source_id, path))
        state = table.get_item(Key={"bucket": BUCKET, "key": key}).get("Item")
        if key in exists:
            if asset is None or asset.etag != exists[key]:
                lost.append(f"{key}: S3 has {exists[key]}, imgix has {asset}")
        else:
            ok_calls = [
                c
                for c in calls
                if c.origin_path == path
                and c.status == 200
                and c.route in ("add_asset", "refresh_asset")
            ]
            purges = [
                i
                for i, c in enumerate(calls)
                if c.route == "purge" and c.status == 200 and c.raw_path == "/api/v1/purge"
            ]
            urls = {f"https://{domain}/{path}" for domain in DOMAINS}
            if asset is not None and not (purges and urls & set(emulator.purges)):
                lost.append(f"{key}: deleted in S3 but never purged")
            if ok_calls and calls.index(ok_calls[-1]) > max(purges, default=-1):
                reordered.append(f"{key}: indexed after its final delete was purged")
        if state is None or int(state["sequencer"], 16) != last_sequencer[key]:
            reordered.append(
                f"{key}: state holds {state and state['sequencer']}, "
                f"newest event {last_sequencer[key]:X}"
            )

    faults = Counter(c.fault for c in calls if c.fault)
    with capsys.disabled():
        print("\n-- fault injection accounting --------------------------------------")
        print(
            f"S3 events: {EVENTS} on {len(last_sequencer)} keys; messages delivered: "
            f"{len(delivered)} ({len(delivered) - EVENTS} duplicates), out of order"
        )
        print(
            f"imgix calls: {len(calls)}; injected faults: {sum(faults.values())} "
            f"{dict(sorted(faults.items()))}"
        )
        print(
            f"invocations: {stats.invocations}; records handed over: {stats.delivered} "
            f"(incl. SQS retries); reported failed: {stats.failed}"
        )
        print(
            f"messages done (deleted from the queue): {stats.deleted}, of which deferred "
            f"and sent again: {len(deferred)}"
        )
        print(f"messages in the DLQ: {len(dead)} {dict(reasons)}")
        print(f"messages left in the queue: {left}")
        print(
            f"accounted: {stats.deleted + len(dead)} of {len(delivered)}; "
            f"lost: {len(lost)}; reordered: {len(reordered)}"
        )
        for line in (lost + reordered)[:10]:
            print("   ", line)

    assert sum(faults.values()) >= 0.15 * len(calls)  # the faults really were injected
    assert stats.deleted + len(dead) == len(delivered) + len(deferred)
    assert left == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    assert lost == [] and reordered == []
    assert json.dumps(dict(reasons))  # every DLQ message carries a reason (or redrive)
