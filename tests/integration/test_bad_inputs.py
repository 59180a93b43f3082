"""Bad-input corpus: each body goes through the real handler with the expected outcome.

done      the record succeeded and imgix received the expected calls
skipped   the record succeeded and imgix received nothing
poison:X  the record went to the DLQ with a FailureReason containing X, and the batch
          (with a good record beside it) succeeded
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness.events import notification, s3_record, sqs_event
from tests.harness.world import BUCKET, EVENTS, Invoke, Stack


def put_record(key: str = "images/ok.jpg") -> dict[str, Any]:
    return s3_record("ObjectCreated:Put", key, "a" * 32, sequencer="0A")


def mutate(change: Any) -> str:
    record = put_record()
    change(record)
    return notification(record)


def eventbridge(mutation: Any = None) -> str:
    event = json.loads((EVENTS / "eventbridge-object-created.json").read_text())
    event["detail"]["bucket"]["name"] = BUCKET
    if mutation:
        mutation(event)
    return json.dumps(event)


def _set(path: list[str], value: Any) -> Any:
    def apply(document: dict[str, Any]) -> None:
        for name in path[:-1]:
            document = document[name]
        document[path[-1]] = value

    return apply


def _drop(path: list[str]) -> Any:
    def apply(document: dict[str, Any]) -> None:
        for name in path[:-1]:
            document = document[name]
        del document[path[-1]]

    return apply


LONG_KEY = "images/" + "k" * (1024 - len("images/"))
TOO_LONG_KEY = LONG_KEY + "k"
sns = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t"}

CORPUS: dict[str, tuple[str, str]] = {
    "truncated-json": ('{"Records": [{"eventName": "ObjectCreated:Put"', "poison:not JSON"),
    "empty-body": ("", "poison:not JSON"),
    "plain-text": ("hello from a human", "poison:not JSON"),
    "json-array": ("[]", "poison:JSON list"),
    "json-string": ('"images/a.jpg"', "poison:JSON str"),
    "json-null": ("null", "poison:JSON NoneType"),
    "json-number": ("42", "poison:JSON int"),
    "deeply-nested": ("[" * 100_000 + "]" * 100_000, "poison:nested too deeply"),
    "empty-object": ("{}", "poison:unknown event shape"),
    "records-not-a-list": ('{"Records": "x"}', "poison:not a list"),
    "record-not-an-object": ('{"Records": ["x"]}', "poison:Records[0]"),
    "record-empty": ('{"Records": [{}]}', "poison:Records[0]"),
    "missing-s3": (mutate(_drop(["s3"])), "poison:lacks a required field"),
    "missing-key": (mutate(_drop(["s3", "object", "key"])), "poison:lacks a required field"),
    "missing-bucket-name": (mutate(_drop(["s3", "bucket", "name"])), "poison:lacks"),
    "key-wrong-type": (mutate(_set(["s3", "object", "key"], 7)), "poison:object key must be"),
    "key-empty": (mutate(_set(["s3", "object", "key"], "")), "poison:object key must be"),
    "key-1025-bytes": (
        mutate(_set(["s3", "object", "key"], TOO_LONG_KEY)),
        "poison:over S3's 1024",
    ),
    "key-bad-utf8-escape": (
        mutate(_set(["s3", "object", "key"], "images/%FF.jpg")),
        "poison:not UTF-8",
    ),
    "key-lone-surrogate": (
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": '
        '{"name": "' + BUCKET + '"}, "object": {"key": "images/\\ud800.jpg", '
        '"size": 1, "eTag": "e", "sequencer": "0A"}}}]}',
        "poison:not valid",
    ),
    "sequencer-not-hex": (mutate(_set(["s3", "object", "sequencer"], "xyz")), "poison:hexadecimal"),
    "sequencer-wrong-type": (mutate(_set(["s3", "object", "sequencer"], 10)), "poison:hex string"),
    "size-negative": (mutate(_set(["s3", "object", "size"], -1)), "poison:size"),
    "size-string": (mutate(_set(["s3", "object", "size"], "12")), "poison:size"),
    "sns-message-not-json": (json.dumps({**sns, "Message": "{oops"}), "poison:not JSON"),
    "eventbridge-missing-object": (eventbridge(_drop(["detail", "object"])), "poison:EventBridge"),
    "eventbridge-missing-bucket": (eventbridge(_drop(["detail", "bucket"])), "poison:EventBridge"),
    "unknown-source": (json.dumps({"source": "aws.ec2", "detail": {}}), "poison:unknown event"),
    # -- skipped: valid, but nothing for imgix to do ---------------------------------------
    "s3-test-event": ((EVENTS / "s3-test-event.json").read_text(), "skipped"),
    "other-bucket": (mutate(_set(["s3", "bucket", "name"], "someone-elses")), "skipped"),
    "outside-prefix": (mutate(_set(["s3", "object", "key"], "docs/ok.jpg")), "skipped"),
    "folder-marker": (mutate(_set(["s3", "object", "key"], "images/dir/")), "skipped"),
    "no-records": ('{"Records": []}', "skipped"),
    "restore-event": (mutate(_set(["eventName"], "ObjectRestore:Completed")), "skipped"),
    "tagging-event": (mutate(_set(["eventName"], "ObjectTagging:Put")), "skipped"),
    "eventbridge-restore": (
        eventbridge(_set(["detail-type"], "Object Restore Completed")),
        "skipped",
    ),
    "percent-that-is-not-an-escape": (
        mutate(_set(["s3", "object", "key"], "images/%zz.jpg")),
        "skipped",
    ),  # decodes to itself; not at the origin
    # -- done -------------------------------------------------------------------------------
    "key-of-exactly-1024-bytes": (mutate(_set(["s3", "object", "key"], LONG_KEY)), "done"),
    "key-with-control-character": (
        mutate(_set(["s3", "object", "key"], "images/a%01b.jpg")),
        "done",
    ),
    "lifecycle-expiration": (
        notification(s3_record("LifecycleExpiration:Delete", "images/ok.jpg", sequencer="0B")),
        "done",
    ),
    "delete-marker": (
        notification(
            s3_record("ObjectRemoved:DeleteMarkerCreated", "images/ok.jpg", sequencer="0B")
        ),
        "done",
    ),
    "sns-wrapped": (json.dumps({**sns, "Message": notification(put_record())}), "done"),
    "eventbridge-created": (
        eventbridge(_set(["detail", "object", "key"], "images/ok.jpg")),
        "done",
    ),
}


@pytest.mark.parametrize(("body", "expected"), CORPUS.values(), ids=CORPUS.keys())
def test_bad_input_corpus(stack: Stack, invoke: Invoke, body: str, expected: str):
    for key in ("images/ok.jpg", LONG_KEY, "images/a\x01b.jpg", "images/good.jpg"):
        stack.put(key)
    good = notification(s3_record("ObjectCreated:Put", "images/good.jpg", "b" * 32))
    event = sqs_event(body, good)

    assert invoke(event) == {"batchItemFailures": []}  # nothing retried, nothing lost

    calls = [c for c in stack.emulator.calls if c.route != "get_source"]
    mine = [c for c in calls if c.origin_path != "good.jpg"]
    assert any(c.origin_path == "good.jpg" and c.status == 200 for c in calls)
    dead = stack.dlq_messages()
    if expected.startswith("poison:"):
        [message] = dead
        assert message["Body"] == (body or "(empty body)")
        assert (
            expected.removeprefix("poison:")
            in message["MessageAttributes"]["FailureReason"]["StringValue"]
        )
        assert mine == []
    elif expected == "skipped":
        assert dead == []
        assert [c for c in mine if c.status == 200] == []
    else:
        assert dead == []
        assert mine and all(c.status == 200 for c in mine)


@pytest.mark.long(8)
def test_a_body_with_many_records_indexes_every_one(stack: Stack, invoke: Invoke):
    records = []
    for i in range(60):
        key = f"images/bulk/{i}.jpg"
        records.append(s3_record("ObjectCreated:Put", key, stack.put(key)))
    assert invoke(sqs_event(json.dumps({"Records": records}))) == {"batchItemFailures": []}
    # Every key once; a client retry after a read timeout on a loaded machine may add a
    # second call for one path, which is the documented at-least-once behaviour.
    added = {c.origin_path for c in stack.emulator.calls_to("add_asset") if c.status == 200}
    assert added == {f"bulk/{i}.jpg" for i in range(60)}


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30
