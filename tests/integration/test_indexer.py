"""The indexer end to end: SQS batch -> real handler -> real HTTP -> emulator (and moto)."""

from __future__ import annotations

import json

import pytest

from tests.harness.events import failed_ids, notification, s3_record, sqs_event
from tests.harness.world import API_KEY, BUCKET, DOMAINS, EVENTS, Invoke, Stack


def added(stack: Stack) -> list[str]:
    return [c.origin_path for c in stack.emulator.calls_to("add_asset") if c.status == 200]


def test_put_adds_exactly_once_with_origin_path_relative_to_prefix(stack: Stack, invoke: Invoke):
    etag = stack.put("images/summer sale/hero.jpg")
    response = invoke(
        sqs_event(notification(s3_record("ObjectCreated:Put", "images/summer sale/hero.jpg", etag)))
    )

    assert response == {"batchItemFailures": []}
    [call] = stack.emulator.calls_to("add_asset")
    assert call.raw_path.endswith(f"/sources/{stack.source_id}/assets/add/summer%20sale/hero.jpg")
    assert call.origin_path == "summer sale/hero.jpg"
    assert (stack.source_id, "summer sale/hero.jpg") in stack.emulator.assets
    assert [c.route for c in stack.emulator.calls] == ["get_source", "add_asset"]


def test_overwrite_refreshes_and_imgix_reprocesses(stack: Stack, invoke: Invoke):
    first = stack.put("images/logo.png", b"v1")
    invoke(sqs_event(notification(s3_record("ObjectCreated:Put", "images/logo.png", first))))
    second = stack.put("images/logo.png", b"v2")
    invoke(sqs_event(notification(s3_record("ObjectCreated:Put", "images/logo.png", second))))

    assert len(stack.emulator.calls_to("add_asset")) == 1
    [refresh] = stack.emulator.calls_to("refresh_asset")
    assert refresh.origin_path == "logo.png"
    asset = stack.emulator.assets[(stack.source_id, "logo.png")]
    assert (asset.etag, asset.version) == (second, 2)


def test_delete_purges_every_imgix_url_of_the_source(stack: Stack, invoke: Invoke):
    etag = stack.put("images/old banner.jpg")
    invoke(sqs_event(notification(s3_record("ObjectCreated:Put", "images/old banner.jpg", etag))))
    stack.s3.delete_object(Bucket=BUCKET, Key="images/old banner.jpg")
    invoke(sqs_event(notification(s3_record("ObjectRemoved:Delete", "images/old banner.jpg"))))

    assert stack.emulator.purges == [f"https://{domain}/old%20banner.jpg" for domain in DOMAINS]


def test_keys_outside_the_prefix_test_events_and_folder_markers_cost_no_call(
    stack: Stack, invoke: Invoke
):
    stack.put("other/thing.jpg")
    stack.put("imagesX/thing.jpg")
    event = sqs_event(
        notification(s3_record("ObjectCreated:Put", "other/thing.jpg")),
        notification(s3_record("ObjectCreated:Put", "imagesX/thing.jpg")),
        notification(s3_record("ObjectCreated:Put", "images/new folder/", size=0)),
        notification(s3_record("ObjectCreated:Put", "images/x.jpg", bucket="another-bucket")),
        json.loads((EVENTS / "sqs-s3-test-event.json").read_text())["Records"][0]["body"],
    )
    assert invoke(event) == {"batchItemFailures": []}
    assert [c.route for c in stack.emulator.calls] == ["get_source"]
    assert stack.dlq_messages() == []


SPECIAL_KEYS = {
    "space": ("images/a b.jpg", "a%20b.jpg"),
    "plus": ("images/a+b.jpg", "a%2Bb.jpg"),
    "percent": ("images/100%.png", "100%25.png"),
    "percent-hex-lookalike": ("images/%41.png", "%2541.png"),
    "unicode": ("images/café/日本.webp", "caf%C3%A9/%E6%97%A5%E6%9C%AC.webp"),
    "hash": ("images/#1.gif", "%231.gif"),
    "query": ("images/what?.gif", "what%3F.gif"),
    "dot-dot": ("images/../escape.jpg", "%2E%2E/escape.jpg"),
    "dot-dot-deep": ("images/../../../purge", "%2E%2E/%2E%2E/%2E%2E/purge"),
    "single-dot": ("images/./x.jpg", "%2E/x.jpg"),
    "semicolon-and-ampersand": ("images/a;b&c=d.jpg", "a%3Bb%26c%3Dd.jpg"),
    "backslash": ("images/a\\..\\b.jpg", "a%5C..%5Cb.jpg"),
}


@pytest.mark.parametrize(("key", "encoded"), SPECIAL_KEYS.values(), ids=SPECIAL_KEYS.keys())
def test_special_keys_reach_exactly_their_own_path(
    stack: Stack, invoke: Invoke, key: str, encoded: str
):
    etag = stack.put(key)
    response = invoke(sqs_event(notification(s3_record("ObjectCreated:Put", key, etag))))

    assert response == {"batchItemFailures": []}
    calls = [c for c in stack.emulator.calls if c.route != "get_source"]
    assert [(c.route, c.status) for c in calls] == [("add_asset", 200)]
    assert calls[0].raw_path == f"/api/v1/sources/{stack.source_id}/assets/add/{encoded}"
    assert calls[0].origin_path == key[len("images/") :]
    assert list(stack.emulator.assets) == [(stack.source_id, key[len("images/") :])]


def test_event_samples_with_special_keys_decode_to_the_stored_keys(stack: Stack, invoke: Invoke):
    event = json.loads((EVENTS / "sqs-s3-special-keys.json").read_text())
    keys = []
    for record in event["Records"]:
        raw = json.loads(record["body"])["Records"][0]["s3"]["object"]["key"]
        from urllib.parse import unquote_plus

        keys.append(unquote_plus(raw))
        stack.put(unquote_plus(raw))
    assert invoke(event) == {"batchItemFailures": []}
    assert sorted(added(stack)) == sorted(k[len("images/") :] for k in keys)


def test_one_failing_record_in_a_batch_of_ten_is_the_only_one_reported(
    stack: Stack, invoke: Invoke
):
    keys = [f"images/batch/{i}.jpg" for i in range(10)]
    bodies = [notification(s3_record("ObjectCreated:Put", k, stack.put(k))) for k in keys]
    # imgix keeps failing for one path (more 503s than the client retries), the rest succeed.
    stack.emulator.faults.script(["503"] * 10, route="add_asset", origin_path="batch/7.jpg")
    event = sqs_event(*bodies)

    response = invoke(event)

    assert failed_ids(response) == {event["Records"][7]["messageId"]}
    assert sorted(added(stack)) == sorted(k[len("images/") :] for k in keys if "7" not in k)
    assert stack.dlq_messages() == []  # transient: SQS retries it, not the DLQ


def test_429_then_success_is_retried_honouring_retry_after(stack: Stack, invoke: Invoke):
    stack.emulator.limits.retry_after_header = True  # imgix documents none; taken when sent
    stack.emulator.faults.script(["429"], route="add_asset")
    etag = stack.put("images/rate.jpg")
    response = invoke(
        sqs_event(notification(s3_record("ObjectCreated:Put", "images/rate.jpg", etag)))
    )

    assert response == {"batchItemFailures": []}
    attempts = stack.emulator.calls_to("add_asset")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.9  # Retry-After: 1 was honoured


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "reset"])
def test_transient_faults_are_retried_by_the_client(stack: Stack, invoke: Invoke, fault: str):
    stack.emulator.faults.script([fault], route="add_asset")
    etag = stack.put("images/flaky.jpg")
    response = invoke(
        sqs_event(notification(s3_record("ObjectCreated:Put", "images/flaky.jpg", etag)))
    )
    assert response == {"batchItemFailures": []}
    assert (stack.source_id, "flaky.jpg") in stack.emulator.assets
    assert stack.emulator.calls_to("add_asset")[0].fault == fault


def test_poison_record_goes_to_the_dlq_with_a_reason_and_the_batch_succeeds(
    stack: Stack, invoke: Invoke
):
    etag = stack.put("images/ok.jpg")
    event = sqs_event(
        "{not json", notification(s3_record("ObjectCreated:Put", "images/ok.jpg", etag))
    )
    assert invoke(event) == {"batchItemFailures": []}
    assert added(stack) == ["ok.jpg"]
    [dead] = stack.dlq_messages()
    assert dead["Body"] == "{not json"
    assert "not JSON" in dead["MessageAttributes"]["FailureReason"]["StringValue"]
    assert (
        dead["MessageAttributes"]["OriginMessageId"]["StringValue"]
        == event["Records"][0]["messageId"]
    )


def test_permanent_imgix_error_dead_letters_with_imgix_detail(stack: Stack, invoke: Invoke):
    stack.emulator.api_keys[API_KEY] = frozenset({"sources"})  # key lacks asset permission
    etag = stack.put("images/denied.jpg")
    event = sqs_event(notification(s3_record("ObjectCreated:Put", "images/denied.jpg", etag)))
    assert invoke(event) == {"batchItemFailures": []}
    [dead] = stack.dlq_messages()
    reason = dead["MessageAttributes"]["FailureReason"]["StringValue"]
    assert "403" in reason and "asset_manager_edit" in reason


def test_several_events_for_one_key_in_a_batch_cost_one_call_for_the_newest(
    stack: Stack, invoke: Invoke
):
    etag = stack.put("images/burst.jpg")
    put1 = s3_record("ObjectCreated:Put", "images/burst.jpg", etag, sequencer="00A0")
    etag = stack.put("images/burst.jpg")
    put2 = s3_record("ObjectCreated:Put", "images/burst.jpg", etag, sequencer="00A1")
    stack.s3.delete_object(Bucket=BUCKET, Key="images/burst.jpg")  # what the events report
    delete = s3_record("ObjectRemoved:DeleteMarkerCreated", "images/burst.jpg", sequencer="00A2")
    # Delivered out of order: the delete (newest) first.
    response = invoke(sqs_event(notification(delete), notification(put2), notification(put1)))

    assert response == {"batchItemFailures": []}
    routes = [c.route for c in stack.emulator.calls if c.route != "get_source"]
    assert routes == ["purge"] * len(DOMAINS)


def test_stale_event_after_a_newer_one_is_skipped(stack: Stack, invoke: Invoke):
    etag = stack.put("images/order.jpg")
    invoke(
        sqs_event(
            notification(s3_record("ObjectRemoved:Delete", "images/order.jpg", sequencer="0100"))
        )
    )
    stack.emulator.reset_calls()
    invoke(
        sqs_event(
            notification(s3_record("ObjectCreated:Put", "images/order.jpg", etag, sequencer="00FF"))
        )
    )
    assert stack.emulator.calls == []


def test_redelivered_event_costs_no_second_call(stack: Stack, invoke: Invoke):
    etag = stack.put("images/dup.jpg")
    body = notification(s3_record("ObjectCreated:Put", "images/dup.jpg", etag))
    invoke(sqs_event(body))
    invoke(sqs_event(body))
    assert len(stack.emulator.calls_to("add_asset")) == 1


def test_eventbridge_shapes_are_indexed_like_notifications(stack: Stack, invoke: Invoke):
    stack.put("images/summer sale/hero.jpg")
    event = json.loads((EVENTS / "sqs-eventbridge-object-created.json").read_text())
    assert invoke(event) == {"batchItemFailures": []}
    assert added(stack) == ["summer sale/hero.jpg"]
    stack.s3.delete_object(Bucket=BUCKET, Key="images/summer sale/hero.jpg")
    invoke(json.loads((EVENTS / "sqs-eventbridge-object-deleted.json").read_text()))
    assert len(stack.emulator.purges) == len(DOMAINS)


def test_the_api_key_never_appears_in_logs(stack: Stack, invoke: Invoke, capsys):
    stack.emulator.faults.script(["500", "reset", "429"], route="add_asset")
    etag = stack.put("images/secret.jpg")
    invoke(
        sqs_event(
            "garbage", notification(s3_record("ObjectCreated:Put", "images/secret.jpg", etag))
        )
    )
    stack.emulator.api_keys.clear()  # now every call is refused: errors get logged
    changed = stack.put("images/secret.jpg", b"new bytes")  # a refresh that imgix refuses
    invoke(sqs_event(notification(s3_record("ObjectCreated:Put", "images/secret.jpg", changed))))
    output = capsys.readouterr().out
    assert "imgix call failed" in output and "sent to DLQ" in output
    assert API_KEY not in output


def test_a_log_line_that_carries_the_key_is_redacted(indexer, capsys):
    indexer.logger.error("oops", extra={"header": f"Bearer {API_KEY}"})
    output = capsys.readouterr().out
    assert API_KEY not in output and "***REDACTED***" in output


def test_concurrent_duplicate_delivery_calls_imgix_once(stack: Stack, indexer):
    """Two invocations handle the same S3 event at once: the idempotency lock admits one."""
    import threading

    from tests.harness.world import FakeContext

    etag = stack.put("images/race.jpg")
    body = notification(s3_record("ObjectCreated:Put", "images/race.jpg", etag))
    stack.emulator.latency_s = 0.3  # keep the first call in flight while the second arrives
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            response = indexer.lambda_handler(sqs_event(body), FakeContext())
            outcomes.append("failed" if response["batchItemFailures"] else "done")
        except Exception:  # a batch whose every record failed raises: Lambda retries it
            outcomes.append("failed")

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(stack.emulator.calls_to("add_asset")) == 1
    # The loser is retried by SQS, and on redelivery costs no call (completed record/state).
    assert sorted(outcomes) in (["done", "done"], ["done", "failed"])
    stack.emulator.latency_s = 0
    assert indexer.lambda_handler(sqs_event(body), FakeContext()) == {"batchItemFailures": []}
    assert len(stack.emulator.calls_to("add_asset")) == 1
