"""Real S3 operations on the versioned origin bucket, delivered in AWS's documented shapes
(events/: notifications, SNS envelopes, EventBridge with reason and deletion-type): imgix
ends holding what S3 holds."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from moto.events.models import EventPattern

from tests.harness.events import failed_ids, next_sequencer, queued, sqs_event
from tests.harness.template import RESOURCES
from tests.harness.world import BUCKET, DOMAINS, EVENTS, Invoke, Stack


def shaped(name: str, key: str, version_id: str = "", etag: str = "", **extra: Any) -> dict:
    """An events/ sample with this key (encoded as S3 encodes it), version and sequencer."""
    document = json.loads((EVENTS / name).read_text())
    if "Records" in document:
        obj = document["Records"][0]["s3"]["object"]
        obj["key"] = quote_plus(key, safe="/")
        obj["sequencer"] = next_sequencer()
        if version_id:
            obj["versionId"] = version_id
        if etag:
            obj["eTag"] = etag
    else:
        obj = document["detail"]["object"]
        obj["key"] = extra.get("raw_key", key)
        obj["sequencer"] = next_sequencer()
        if version_id:
            obj["version-id"] = version_id
        if etag:
            obj["etag"] = etag
    return document


def deliver(invoke: Invoke, *documents: dict) -> dict[str, Any]:
    return invoke(sqs_event(*(json.dumps(d) for d in documents)))


def put(stack: Stack, key: str, body: bytes = b"bytes", **extra: Any) -> dict[str, str]:
    out = stack.s3.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)
    return {"etag": out["ETag"].strip('"'), "version": out.get("VersionId", "")}


def routes(stack: Stack) -> list[str]:
    return [c.route for c in stack.emulator.calls if c.route not in ("get_source", "get_asset")]


def created(stack: Stack, key: str, obj: dict[str, str]) -> dict:
    return shaped("s3-put.json", key, obj["version"], obj["etag"])


def copied_in_place(stack: Stack, key: str, **metadata: Any) -> dict:
    """Copy the object onto itself with new metadata (the same bytes); S3's event for it."""
    copied = stack.s3.copy_object(
        Bucket=BUCKET,
        Key=key,
        CopySource={"Bucket": BUCKET, "Key": key},
        MetadataDirective="REPLACE",
        **metadata,
    )
    etag = copied["CopyObjectResult"]["ETag"].strip('"')
    event = shaped("s3-put.json", key, copied["VersionId"], etag)
    event["Records"][0]["eventName"] = "ObjectCreated:Copy"
    return event


def asset_etag(stack: Stack, key: str) -> str:
    return stack.emulator.assets[(stack.source_id, key.removeprefix("images/"))].etag


KEY = "images/life cycle.jpg"


def test_deleting_an_old_version_changes_nothing_and_a_real_delete_still_purges(
    stack: Stack, invoke: Invoke
):
    v1 = put(stack, KEY, b"one")
    deliver(invoke, created(stack, KEY, v1))
    v2 = put(stack, KEY, b"two")
    deliver(invoke, created(stack, KEY, v2))
    stack.emulator.reset_calls()

    stack.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=v1["version"])
    deliver(invoke, shaped("s3-delete-noncurrent-version.json", KEY, v1["version"]))
    assert routes(stack) == []  # the live image is not purged for an old version

    marker = stack.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    deliver(invoke, shaped("s3-delete-marker-created.json", KEY, marker))
    assert routes(stack) == ["purge"] * len(DOMAINS)


def test_a_create_that_finds_the_object_gone_does_not_hide_the_delete(stack: Stack, invoke: Invoke):
    v1 = put(stack, KEY)
    event = created(stack, KEY, v1)
    marker = stack.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    deliver(invoke, event)  # finds nothing in S3: nothing to tell imgix yet
    assert routes(stack) == []

    deliver(invoke, shaped("s3-delete-marker-created.json", KEY, marker))
    assert routes(stack) == ["purge"] * len(DOMAINS)


def test_deleting_the_delete_marker_brings_the_object_back(stack: Stack, invoke: Invoke):
    v1 = put(stack, KEY, b"kept")
    deliver(invoke, created(stack, KEY, v1))
    marker = stack.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    deliver(invoke, shaped("s3-delete-marker-created.json", KEY, marker))
    stack.emulator.reset_calls()

    stack.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=marker)  # undelete
    deliver(invoke, shaped("s3-delete-noncurrent-version.json", KEY, marker))

    assert routes(stack) == ["refresh_asset"]
    assert asset_etag(stack, KEY) == v1["etag"]


def test_deleting_the_current_version_rolls_back_to_the_older_one(stack: Stack, invoke: Invoke):
    v1 = put(stack, KEY, b"older")
    deliver(invoke, created(stack, KEY, v1))
    v2 = put(stack, KEY, b"newer")
    deliver(invoke, created(stack, KEY, v2))
    stack.emulator.reset_calls()

    stack.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=v2["version"])
    deliver(invoke, shaped("s3-delete-noncurrent-version.json", KEY, v2["version"]))

    assert routes(stack) == ["refresh_asset"]
    assert asset_etag(stack, KEY) == v1["etag"]


def test_an_overwrite_of_an_object_from_before_the_stack_is_refreshed_not_added(
    stack: Stack, invoke: Invoke
):
    """add does not reprocess an asset imgix already has: a key with history is refreshed."""
    put(stack, KEY, b"from before the stack")
    stack.emulator.assets.clear()
    v2 = put(stack, KEY, b"new bytes")

    deliver(invoke, created(stack, KEY, v2))

    assert routes(stack) == ["refresh_asset"]
    assert asset_etag(stack, KEY) == v2["etag"]


def test_an_unversioned_bucket_asks_imgix_whether_it_holds_the_asset(stack: Stack, invoke: Invoke):
    stack.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    first = put(stack, "images/fresh.jpg")
    deliver(invoke, created(stack, "images/fresh.jpg", first))
    stack.emulator.reset_calls()
    # An object imgix already indexed (say, from renders), which the stack never saw.
    stack.emulator.create_asset(stack.source_id, "known.jpg", "old-etag")
    known = put(stack, "images/known.jpg", b"newer")
    deliver(invoke, created(stack, "images/known.jpg", known))

    assert [c.route for c in stack.emulator.calls if c.route != "get_source"] == [
        "get_asset",
        "refresh_asset",
    ]
    assert asset_etag(stack, "images/known.jpg") == known["etag"]


@pytest.mark.parametrize(
    ("changed", "calls"),
    [
        ({"CacheControl": "max-age=60"}, ["refresh_asset"]),  # served metadata: refetched
        # imgix documents no use of S3 user metadata (x-amz-meta-*) in what it renders or
        # serves: a change of it alone is worth none of the 10 refreshes a minute.
        ({"Metadata": {"sku": "2"}}, []),
    ],
)
def test_a_copy_in_place_with_new_metadata_is_refreshed_only_for_served_metadata(
    stack: Stack, invoke: Invoke, changed: dict[str, Any], calls: list[str]
):
    v1 = put(stack, KEY, b"same bytes", ContentType="image/jpeg", Metadata={"sku": "1"})
    deliver(invoke, created(stack, KEY, v1))
    stack.emulator.reset_calls()
    event = copied_in_place(
        stack, KEY, ContentType="image/jpeg", **({"Metadata": {"sku": "1"}} | changed)
    )

    deliver(invoke, event)

    assert routes(stack) == calls  # the same ETag either way


@pytest.mark.parametrize(
    "sample",
    ["s3-lifecycle-expiration-delete-marker.json", "eventbridge-lifecycle-expiration.json"],
)
def test_a_lifecycle_expiration_purges(stack: Stack, invoke: Invoke, sample: str):
    v1 = put(stack, KEY)
    deliver(invoke, created(stack, KEY, v1))
    marker = stack.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]  # as lifecycle does
    stack.emulator.reset_calls()

    deliver(invoke, shaped(sample, KEY, marker))

    assert routes(stack) == ["purge"] * len(DOMAINS)


@pytest.mark.parametrize("raw_delivery", [False, True])
def test_sns_envelopes_raw_or_not(stack: Stack, invoke: Invoke, raw_delivery: bool):
    v1 = put(stack, KEY)
    envelope = json.loads((EVENTS / "sns-s3-put.json").read_text())
    message = created(stack, KEY, v1)
    envelope["Message"] = json.dumps(message)

    response = deliver(invoke, message if raw_delivery else envelope)

    assert response == {"batchItemFailures": []}
    assert routes(stack) == ["add_asset"]


def test_an_sns_subscription_confirmation_waits_in_the_dlq_for_a_person(
    stack: Stack, invoke: Invoke, capsys: pytest.CaptureFixture[str]
):
    """Acknowledged (no retry), never fetched, and never silent: one log line names the
    topic, a metric counts it, and the message (its token) waits in the DLQ."""
    confirmation = json.loads((EVENTS / "sns-subscription-confirmation.json").read_text())
    capsys.readouterr()

    assert deliver(invoke, confirmation) == {"batchItemFailures": []}

    assert routes(stack) == []
    [kept] = stack.dlq_messages()
    assert json.loads(kept["Body"])["Token"] == confirmation["Token"]
    reason = kept["MessageAttributes"]["FailureReason"]["StringValue"]
    assert confirmation["TopicArn"] in reason and "confirm-subscription" in reason
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line.get("message") == "SNS subscription needs a person"]
    assert logged["topic"] == confirmation["TopicArn"]
    assert confirmation["SubscribeURL"] not in output  # never logged, never fetched
    metrics = [line for line in lines if "_aws" in line]
    assert [m["SnsSubscriptionHandshakes"] for m in metrics if "SnsSubscriptionHandshakes" in m]


@pytest.mark.parametrize(
    ("sample", "source"),
    [
        ("s3-put.json", "S3"),
        ("sns-lambda-s3-put.json", "SNS"),
        ("eventbridge-object-created.json", "EventBridge"),
    ],
)
def test_an_event_sent_straight_to_the_function_is_kept_with_a_clear_reason(
    stack: Stack, indexer: Any, sample: str, source: str
):
    from tests.harness.world import FakeContext

    event = json.loads((EVENTS / sample).read_text())

    assert indexer.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}

    [kept] = stack.dlq_messages()
    reason = kept["MessageAttributes"]["FailureReason"]["StringValue"]
    assert f"came straight from {source}" in reason
    assert "images/summer+sale/hero.jpg" in kept["Body"]  # the event itself is not lost
    assert routes(stack) == []


@pytest.mark.parametrize("encoded", [False, True])
def test_an_eventbridge_key_is_right_whether_or_not_aws_encodes_it(
    stack: Stack, invoke: Invoke, encoded: bool
):
    key = "images/2026-11-23T09:00:00+00:00 100%.jpg"
    raw = quote_plus(key, safe="/") if encoded else key
    v1 = put(stack, key)
    document = shaped(
        "eventbridge-object-created.json", key, v1["version"], v1["etag"], raw_key=raw
    )

    assert deliver(invoke, document) == {"batchItemFailures": []}
    assert [c.origin_path for c in stack.emulator.calls_to("add_asset")] == [
        key.removeprefix("images/")
    ]

    marker = stack.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    deleted = shaped("eventbridge-object-deleted-marker.json", key, marker, raw_key=raw)
    assert deliver(invoke, deleted) == {"batchItemFailures": []}
    assert stack.emulator.purges == [
        f"https://{domain}/2026-11-23T09%3A00%3A00%2B00%3A00%20100%25.jpg" for domain in DOMAINS
    ]


@pytest.mark.parametrize("origin_versioned", [False])
@pytest.mark.parametrize("encoded", [False, True])
def test_an_unversioned_eventbridge_delete_of_an_unseen_key_purges_both_readings(
    stack: Stack, invoke: Invoke, encoded: bool
):
    """An existing bucket the stack starts watching: the put came before the stack, so
    no state; then the object is deleted. S3 keeps no trace of an unversioned key, so it
    cannot say which reading of the EventBridge key was real: both are purged."""
    key = "images/summer sale/hero+1.jpg"
    put(stack, key)  # before the stack: its event was never handled
    stack.s3.delete_object(Bucket=BUCKET, Key=key)
    raw = quote_plus(key, safe="/") if encoded else key
    deleted = shaped("eventbridge-object-deleted-permanently.json", key, raw_key=raw)
    del deleted["detail"]["object"]["version-id"]  # AWS sends it for versioned buckets only

    assert deliver(invoke, deleted) == {"batchItemFailures": []}

    real = [f"https://{domain}/summer%20sale/hero%2B1.jpg" for domain in DOMAINS]
    assert set(real) <= set(stack.emulator.purges)  # the real key's URLs, every domain
    assert len(stack.emulator.purges) == 2 * len(DOMAINS)  # and the other reading's
    assert routes(stack) == ["purge"] * 2 * len(DOMAINS)


@pytest.mark.parametrize("encoded", [False, True])
def test_a_versioned_eventbridge_delete_of_a_keys_only_version_purges_every_reading(
    stack: Stack, invoke: Invoke, encoded: bool
):
    """Found by the oracle: a key put and its only version deleted before either event is
    handled. S3 keeps no trace of either reading of the EventBridge key, so it cannot say
    which was real: both are purged (a lost delete would keep the image up)."""
    key = "images/d+e.jpg"
    v1 = put(stack, key)
    put_event = created(stack, key, v1)  # S3's order: the put's sequencer first
    stack.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=v1["version"])
    raw = quote_plus(key, safe="/") if encoded else key
    deleted = shaped("eventbridge-object-deleted-permanently.json", key, v1["version"], raw_key=raw)

    assert deliver(invoke, put_event) == {"batchItemFailures": []}  # finds it gone: nothing
    assert deliver(invoke, deleted) == {"batchItemFailures": []}

    real = [f"https://{domain}/d%2Be.jpg" for domain in DOMAINS]
    assert set(real) <= set(stack.emulator.purges)
    assert routes(stack) == ["purge"] * 2 * len(DOMAINS)  # the other reading's too, no add


def template_notification_events(maps_tags: bool = False) -> list[str]:
    """The bucket's notification events, with or without TagFields (condition MapsTags)."""
    config = RESOURCES["OriginBucket"]["Properties"]["NotificationConfiguration"]
    events = []
    for entry in config["QueueConfigurations"]:
        chosen = entry
        if "Fn::If" in entry:
            condition, then, otherwise = entry["Fn::If"]
            assert condition == "MapsTags" and otherwise == {"Ref": "AWS::NoValue"}
            chosen = then if maps_tags else None
        if chosen:
            events.append(chosen["Event"])
    return events


def test_the_bucket_publishes_every_event_the_indexer_handles():
    handled = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]
    assert template_notification_events() == handled
    assert template_notification_events(maps_tags=True) == [*handled, "s3:ObjectTagging:*"]


@pytest.mark.parametrize(
    "sample",
    [
        "eventbridge-object-created.json",
        "eventbridge-object-deleted.json",
        "eventbridge-object-deleted-marker.json",
        "eventbridge-object-deleted-permanently.json",
        "eventbridge-lifecycle-expiration.json",
        "eventbridge-object-tags-added.json",
        "eventbridge-object-tags-deleted.json",
    ],
)
def test_the_eventbridge_rule_matches_every_event_the_indexer_handles(sample: str):
    """Object events with or without TagFields; tag events only with it."""
    event = json.loads((EVENTS / sample).read_text())
    for maps_tags in (True, False):
        pattern = copy.deepcopy(RESOURCES["OriginEventsRule"]["Properties"]["EventPattern"])
        pattern["detail"]["bucket"]["name"] = [BUCKET]
        condition, with_tags, without = pattern["detail-type"]["Fn::If"]
        assert condition == "MapsTags"
        pattern["detail-type"] = with_tags if maps_tags else without
        wanted = maps_tags or "Tags" not in event["detail-type"]
        assert EventPattern.load(json.dumps(pattern)).matches_event(event) == wanted


def test_a_deferred_record_keeps_its_shape(stack: Stack, invoke: Invoke):
    """A deferral re-sends the body as it came: EventBridge stays EventBridge."""
    v1 = put(stack, KEY)
    stack.emulator.answers["busy"] = (429, {"Retry-After": "300"}, b"{}")
    stack.emulator.faults.script(["answer:busy"], route="add_asset")
    document = shaped("eventbridge-object-created.json", KEY, v1["version"], v1["etag"])

    assert failed_ids(deliver(invoke, document)) == set()

    [held] = queued()
    assert json.loads(held.body) == document
