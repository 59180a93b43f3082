"""Every imgix answer has one defined outcome and a readable reason (issue: deployed stack).

Each row makes the emulator answer `add` exactly so (byte for byte where it matters),
through real HTTP, to the real indexer handler under the template's IAM policy, and checks
where the record ends: done, retried by SQS, deferred to the queue, or in the DLQ with a
reason. A 404 is never recorded as a deletion.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.harness.events import failed_ids, notification, queued, s3_record, sqs_event
from tests.harness.world import DOMAINS, Invoke, Stack

JSONAPI = {"Content-Type": "application/vnd.api+json"}
HTML = {"Content-Type": "text/html"}


def errors(status: int, detail: str) -> bytes:
    return json.dumps(
        {"errors": [{"status": str(status), "title": "T", "detail": detail}]}
    ).encode()


# name: (answer repeated for every attempt, expected outcome, text the reason must hold)
ANSWERS: dict[str, tuple[tuple[int, dict[str, str], bytes], str, str]] = {
    "200 JSON:API": ((200, JSONAPI, b'{"data": {"type": "assets", "id": "x"}}'), "done", ""),
    "200 empty body": ((200, JSONAPI, b""), "done", ""),
    "202 HTML body": ((202, HTML, b"<html><body>Accepted</body></html>"), "done", ""),
    "200 JSON list": ((200, JSONAPI, b"[1, 2]"), "done", ""),
    "400 errors[]": (
        (400, JSONAPI, errors(400, "origin_path is invalid")),
        "dlq",
        "origin_path is invalid",
    ),
    "400 errors as object": (
        (400, JSONAPI, b'{"errors": {"detail": "bad thing"}}'),
        "dlq",
        "bad thing",
    ),
    "400 errors as number": ((400, JSONAPI, b'{"errors": 7}'), "dlq", "HTTP 400"),
    "400 truncated JSON": ((400, JSONAPI, b'{"errors": [{"detail": "cut he'), "dlq", "cut he"),
    "403 forbidden": ((403, JSONAPI, errors(403, "lacks Asset Manager Edit")), "dlq", "Edit"),
    "409 conflict": ((409, JSONAPI, errors(409, "busy")), "retry", ""),
    "413 too large": ((413, JSONAPI, errors(413, "too large")), "dlq", "too large"),
    "422 unprocessable": ((422, JSONAPI, errors(422, "unsupported type")), "dlq", "unsupported"),
    "429 without Retry-After": ((429, JSONAPI, errors(429, "slow down")), "defer", "429"),
    "429 with a long Retry-After": (
        (429, {**JSONAPI, "Retry-After": "120"}, errors(429, "slow down")),
        "defer",
        "429",
    ),
    "500 HTML page": (
        (500, HTML, b"<html><head><title>Oops</title></head><body>Internal</body></html>"),
        "retry",
        "Oops Internal",
    ),
    "502 plain text": (
        (502, {"Content-Type": "text/plain"}, b"bad gateway"),
        "retry",
        "bad gateway",
    ),
    "503 JSON": ((503, JSONAPI, errors(503, "maintenance")), "retry", "maintenance"),
    "302 redirect": (
        (302, {"Location": "https://elsewhere.example/api"}, b""),
        "dlq",
        "redirect to elsewhere.example not followed",
    ),
    "301 redirect": ((301, {"Location": "http://api.imgix.com/x"}, b""), "dlq", "not followed"),
}


def outcome(
    stack: Stack, response: dict[str, Any], event: dict[str, Any], logs: str
) -> tuple[str, str]:
    """Where the record went, and the reason given there (or logged, for a retry)."""
    [message_id] = [r["messageId"] for r in event["Records"]]
    dlq = stack.dlq_messages()
    if dlq:
        return "dlq", dlq[0]["MessageAttributes"]["FailureReason"]["StringValue"]
    deferred = [m.message_attributes for m in queued()]
    if deferred:
        return "defer", deferred[0]["DeferredReason"]["StringValue"]
    if message_id in failed_ids(response):
        failures = [json.loads(line) for line in logs.splitlines() if "imgix call failed" in line]
        return "retry", failures[-1]["error"]
    return "done", ""


@pytest.mark.parametrize("name", list(ANSWERS))
def test_every_imgix_answer_has_one_outcome(
    stack: Stack, invoke: Invoke, capsys: pytest.CaptureFixture[str], name: str
):
    answer, expected, reason_holds = ANSWERS[name]
    stack.emulator.answers[name] = answer
    stack.emulator.faults.script([f"answer:{name}"] * 10, route="add_asset")
    etag = stack.put("images/answer.jpg")
    event = sqs_event(notification(s3_record("ObjectCreated:Put", "images/answer.jpg", etag)))

    response = invoke(event)

    got, reason = outcome(stack, response, event, capsys.readouterr().out)
    assert got == expected, (name, reason)
    assert reason_holds in reason
    assert "\n" not in reason and "<" not in reason  # readable: no markup, one line


@pytest.mark.parametrize("missing", ["asset", "source"])
def test_404_is_never_recorded_as_a_deletion(stack: Stack, invoke: Invoke, missing: str):
    stack.emulator.answers["404"] = (404, JSONAPI, errors(404, "Not Found"))
    stack.emulator.faults.script(["answer:404"], route="add_asset")
    if missing == "source":  # the Source was deleted after the indexer read it at start
        stack.emulator.faults.script(["ok", "answer:404"], route="get_source")
    etag = stack.put("images/found.jpg")
    event = sqs_event(notification(s3_record("ObjectCreated:Put", "images/found.jpg", etag)))

    invoke(event)

    [dead] = stack.dlq_messages()
    reason = dead["MessageAttributes"]["FailureReason"]["StringValue"]
    expected = "Source" if missing == "source" else "cannot find an object that S3 holds"
    assert expected in reason
    state = boto3.client("dynamodb").get_item(
        TableName=stack.local.state_table,
        Key={"bucket": {"S": stack.local.bucket}, "key": {"S": "images/found.jpg"}},
    )
    assert "Item" not in state  # imgix was told nothing, so nothing is remembered


def test_404_for_an_object_deleted_meanwhile_is_skipped_not_recorded(stack: Stack, invoke: Invoke):
    """The HEAD saw the object; by the time imgix looked it was gone: its delete event purges."""
    etag = stack.put("images/gone.jpg")

    def delete_when_add_arrives(call: Any) -> None:
        if call.route == "add_asset":
            stack.s3.delete_object(Bucket=stack.local.bucket, Key="images/gone.jpg")

    stack.emulator.answers["404"] = (404, JSONAPI, errors(404, "asset not found"))
    stack.emulator.faults.script(["answer:404"], route="add_asset")
    event = sqs_event(notification(s3_record("ObjectCreated:Put", "images/gone.jpg", etag)))
    stack.emulator.on_request = delete_when_add_arrives

    response = invoke(event)

    assert response == {"batchItemFailures": []}
    assert stack.dlq_messages() == []
    state = boto3.client("dynamodb").get_item(
        TableName=stack.local.state_table,
        Key={"bucket": {"S": stack.local.bucket}, "key": {"S": "images/gone.jpg"}},
    )
    assert "Item" not in state


def test_a_slow_answer_is_retried_then_failed_back(stack: Stack, invoke: Invoke):
    stack.emulator.faults.script(["timeout"] * 10, route="add_asset")
    etag = stack.put("images/slow.jpg")
    event = sqs_event(notification(s3_record("ObjectCreated:Put", "images/slow.jpg", etag)))

    response = invoke(event)

    assert failed_ids(response) == {event["Records"][0]["messageId"]}
    assert stack.dlq_messages() == []


def test_a_repeated_purge_answered_409_counts_as_done(stack: Stack, invoke: Invoke):
    """imgix: a purge of the same URL within 10 s may answer 409 and still succeed."""
    stack.emulator.answers["409"] = (409, JSONAPI, errors(409, "purge already requested"))
    stack.emulator.faults.script(["answer:409"], route="purge")
    event = sqs_event(notification(s3_record("ObjectRemoved:Delete", "images/twice.jpg")))

    assert invoke(event) == {"batchItemFailures": []}
    assert stack.dlq_messages() == []
    assert len(stack.emulator.calls_to("purge")) == len(DOMAINS)  # every domain of the Source
