"""API key rotation loses nothing; a key never reaches a log, an error or an exception text."""

from __future__ import annotations

import json

import boto3
import pytest

from imgix_autoadder.core.api_key import ApiKeyError, StaticApiKey, parse_secret
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixAuthError
from localdev.imgix_emulator import ALL_PERMISSIONS
from tests.harness.events import failed_ids, notification, queued, s3_record, sqs_event
from tests.harness.world import Invoke, Stack

NEW_KEY = "ak_rotated_0123456789abcdef0123456789abcdef"


def put_event(stack: Stack, key: str) -> dict:
    return sqs_event(notification(s3_record("ObjectCreated:Put", key, stack.put(key))))


def rotate(stack: Stack, secret_value: str, accepted: list[str]) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.local.secret_name, SecretString=secret_value
    )
    stack.emulator.api_keys = {key: ALL_PERMISSIONS for key in accepted}


def test_a_rotated_key_is_read_again_on_401_without_a_cold_start(
    stack: Stack, invoke: Invoke, capsys: pytest.CaptureFixture[str]
):
    assert invoke(put_event(stack, "images/before.jpg")) == {"batchItemFailures": []}
    rotate(stack, json.dumps({"api_key": NEW_KEY}), accepted=[NEW_KEY])  # old key revoked

    assert invoke(put_event(stack, "images/after.jpg")) == {"batchItemFailures": []}

    statuses = [c.status for c in stack.emulator.calls_to("add_asset")]
    assert statuses == [200, 401, 200]  # one refused call, then the fresh key
    assert [
        {"body": m.body, **m.message_attributes} for m in queued()
    ] == [] and stack.dlq_messages() == []
    assert NEW_KEY not in capsys.readouterr().out


def test_a_key_refused_even_when_fresh_holds_records_back_without_dead_lettering(
    stack: Stack, invoke: Invoke, capsys: pytest.CaptureFixture[str]
):
    assert invoke(put_event(stack, "images/before.jpg")) == {"batchItemFailures": []}
    rotate(stack, json.dumps({"api_key": NEW_KEY}), accepted=["some-other-key"])
    capsys.readouterr()

    for _ in range(6):  # more deliveries than maxReceiveCount: still never the DLQ
        event = put_event(stack, "images/held.jpg")
        assert invoke(event) == {"batchItemFailures": []}

    assert stack.dlq_messages() == []
    held = [{"body": m.body, **m.message_attributes} for m in queued()]
    assert len(held) == 6  # each back in the queue, delayed, with a fresh receive count
    assert all(
        "API key" in m["DeferredReason"]["StringValue"]
        or "401" in m["DeferredReason"]["StringValue"]
        for m in held
    )
    out = capsys.readouterr().out
    metrics = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert sum(m.get("ApiKeyRejected", [0])[0] for m in metrics if "ApiKeyRejected" in m) == 6
    assert NEW_KEY not in out


def test_a_cold_start_with_a_refused_key_holds_the_batch_back(stack: Stack, indexer):
    from tests.harness.world import FakeContext

    rotate(stack, json.dumps({"api_key": NEW_KEY}), accepted=["some-other-key"])
    event = put_event(stack, "images/cold.jpg")

    response = indexer.lambda_handler(event, FakeContext())

    assert failed_ids(response) == set()
    assert (
        len([{"body": m.body, **m.message_attributes} for m in queued()]) == 1
        and stack.dlq_messages() == []
    )


@pytest.mark.parametrize(
    "secret",
    [
        "ak_live_abc\n",
        "ak_live abc",
        "ak_live\tabc",
        "ak_live\x00abc",
        '{"api_key": "ak_live_abc\\r\\n"}',
        "",
        '{"api_key": 7}',
        '{"api_key": "x"',
    ],
)
def test_a_malformed_key_is_refused_without_echoing_it(secret: str):
    with pytest.raises(ApiKeyError) as caught:
        parse_secret(secret, "imgix-autoadder/api-key")
    message = str(caught.value)
    assert "ak_live" not in message and "abc" not in message
    assert caught.value.__cause__ is None or "ak_live" not in str(caught.value.__cause__)


def test_a_secret_with_a_line_break_holds_records_back_and_never_logs_the_key(
    stack: Stack, invoke: Invoke, capsys: pytest.CaptureFixture[str]
):
    bad = "ak_newline_secret_0123456789\n"
    invoke(put_event(stack, "images/before.jpg"))  # warm, with the good key
    rotate(stack, json.dumps({"api_key": bad}), accepted=[])

    response = invoke(put_event(stack, "images/after.jpg"))

    assert response == {"batchItemFailures": []}
    assert (
        len([{"body": m.body, **m.message_attributes} for m in queued()]) == 1
        and stack.dlq_messages() == []
    )
    out = capsys.readouterr().out
    assert "ak_newline_secret" not in out and "Bearer" not in out


def test_no_exception_text_holds_the_authorization_header(stack: Stack):
    """Even a key that skipped validation cannot put `Bearer <key>` into an error."""

    class Unchecked(StaticApiKey):
        def __init__(self, key: str) -> None:
            self._key = key

    client = ImgixClient(Unchecked("ak_leaky\r\nX-Evil: 1"), stack.emulator.base_url, max_retries=0)
    with pytest.raises(ImgixAuthError) as caught:
        client.get_source(stack.source_id)
    text = (
        f"{caught.value} {caught.value!r} {caught.value.__context__!r} {caught.value.__cause__!r}"
    )
    assert "ak_leaky" not in text and "Bearer" not in text
