"""Large files through upload sessions (the real ASL on moto), small ones by direct upload."""

from __future__ import annotations

import hashlib
import json
import os
import time
import types
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.events.models import EventPattern
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from imgix_autoadder.imgix.transport import PROBE_PATH
from imgix_autoadder.ingest.job import PermanentUploadError
from imgix_autoadder.ingest.streaming import check_presigned_url
from imgix_autoadder.rate.breaker import BASE_OPEN_S, OUTAGE_THRESHOLD
from imgix_autoadder.s3.events import parse_message_body
from localdev.lambda_hook import make_invoke
from localdev.provision import (
    INGEST_QUEUE,
    UPLOAD_SESSIONS_TABLE,
    UPLOADER_FUNCTION,
    LocalIngest,
    provision_ingest,
)
from tests.harness.events import failed_ids, notification, queued, s3_record, sqs_event
from tests.harness.sim_time import SimulatedTime
from tests.harness.world import BUCKET, INGEST, ROOT, FakeContext, Stack, load_function

UPLOADER_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{UPLOADER_FUNCTION}"
MB = 1024 * 1024


def install_invoke_hook(monkeypatch: pytest.MonkeyPatch, functions: dict[str, ModuleType]) -> None:
    """moto runs the state machine; its Lambda tasks call our real handlers in-process."""
    monkeypatch.setattr(LambdaSimpleBackend, "invoke", make_invoke(functions))


@dataclass
class Uploads:
    stack: Stack
    router: ModuleType
    uploader: ModuleType
    ingest: LocalIngest
    sfn: Any
    s3: Any

    @property
    def state_machine_arn(self) -> str:
        return self.ingest.state_machine_arn

    def put(
        self, key: str, body: bytes, content_type: str = "binary/octet-stream"
    ) -> dict[str, Any]:
        out = self.s3.put_object(Bucket=INGEST, Key=key, Body=body, ContentType=content_type)
        return {"etag": str(out["ETag"]).strip('"'), "size": len(body), "version": out["VersionId"]}

    def route(self, *bodies: str) -> dict[str, Any]:
        result: dict[str, Any] = self.router.lambda_handler(sqs_event(*bodies), FakeContext())
        return result

    def executions(self) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"])

    def wait(self, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            [execution] = self.executions()
            if execution["status"] != "RUNNING":
                return dict(self.sfn.describe_execution(executionArn=execution["executionArn"]))
            time.sleep(0.1)
        raise AssertionError("execution still running")

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)
        return list(events["events"])

    def dlq_messages(self) -> list[dict[str, Any]]:
        out = self.stack.sqs.receive_message(
            QueueUrl=self.ingest.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(out.get("Messages", []))


def ingest_event(key: str, obj: dict[str, Any], sequencer: str | None = None) -> str:
    """As S3 sends it for the versioned ingest bucket: with the object's versionId."""
    return notification(
        s3_record(
            "ObjectCreated:Put",
            key,
            obj["etag"],
            obj["size"],
            sequencer=sequencer,
            bucket=INGEST,
            version_id=obj.get("version"),
        )
    )


@pytest.fixture
def uploads(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Uploads:
    definition = (ROOT / "statemachine" / "upload_session.asl.json").read_text()
    # S3 notifications off: tests hand the router exact, real-shaped events themselves.
    ingest = provision_ingest(INGEST, definition, UPLOADER_ARN, notifications=False)
    for name, value in {
        **ingest.router_env(),
        "UPLOAD_POLL_INTERVAL_SECONDS": "0",
        "UPLOAD_MAX_STATUS_POLLS": "3",
        "INGEST_DISPOSITION": "delete",
        "FAILURE_DISPOSITION": "tag",
    }.items():
        monkeypatch.setenv(name, value)
    uploader = load_function("uploader")
    install_invoke_hook(monkeypatch, {UPLOADER_FUNCTION: uploader})
    return Uploads(
        stack,
        load_function("upload_router"),
        uploader,
        ingest,
        boto3.client("stepfunctions"),
        boto3.client("s3"),
    )


def pseudo_random(size: int, seed: int = 1) -> bytes:
    block = b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(2048))
    return (block * (size // len(block) + 1))[:size]


def test_40mb_object_completes_with_identical_bytes_at_imgix(uploads: Uploads):
    emulator, data = uploads.stack.emulator, pseudo_random(40 * MB)
    obj = uploads.put("videos/launch film.mp4", data, content_type="video/mp4")

    assert uploads.route(ingest_event("videos/launch film.mp4", obj)) == {"batchItemFailures": []}
    execution = uploads.wait()

    assert execution["status"] == "SUCCEEDED", execution
    stored = emulator.uploads[(uploads.stack.source_id, "videos/launch film.mp4")]
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()
    [session] = emulator.sessions.values()
    assert session.status == "COMPLETE" and session.size == 40 * MB
    assert (uploads.stack.source_id, "videos/launch film.mp4") in emulator.assets
    # imgix wrote it to the Source's storage (origin bucket, under the Source prefix) ...
    origin = uploads.s3.get_object(
        Bucket="imgix-autoadder-origin-example", Key="images/videos/launch film.mp4"
    )
    assert origin["ContentLength"] == 40 * MB
    # The session was created with the object's type and the PUT sent the same one: a URL
    # signed with it refuses any other (the emulator enforces it, as S3 does).
    assert session.content_type == "video/mp4" and origin["ContentType"] == "video/mp4"
    # ... and the ingest copy is gone (INGEST_DISPOSITION=delete).
    assert uploads.s3.list_objects_v2(Bucket=INGEST).get("KeyCount") == 0
    routes = [c.route for c in emulator.calls if c.route != "get_source"]
    assert routes[:3] == ["create_session", "presigned_put", "close_session"]
    assert set(routes[3:]) == {"session_status"}
    put = emulator.calls_to("presigned_put")[0]
    assert not put.authorization  # the API key never went to the storage host
    assert all(c.authorization for c in emulator.calls if c.route != "presigned_put")


def test_transfer_failure_ends_in_cleanup_with_the_reason(uploads: Uploads):
    uploads.stack.emulator.faults.script(["403"], route="presigned_put")  # e.g. URL expired
    obj = uploads.put("videos/broken.mp4", pseudo_random(31 * MB))
    uploads.route(ingest_event("videos/broken.mp4", obj))
    execution = uploads.wait()

    assert execution["status"] == "FAILED"
    history = uploads.history(execution["executionArn"])
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")
    ]
    assert entered[-2:] == ["RecordFailure", "UploadFailed"]
    recorded = [
        json.loads(e["stateExitedEventDetails"]["output"])["outcome"]
        for e in history
        if e["type"].endswith("StateExited")
        and e["stateExitedEventDetails"]["name"] == "RecordFailure"
    ]
    assert recorded[0]["disposition"] == "tag"
    assert recorded[0]["reason"].startswith("PermanentUploadError")
    assert "403" in recorded[0]["reason"]
    tags = uploads.s3.get_object_tagging(Bucket=INGEST, Key="videos/broken.mp4")["TagSet"]
    assert tags == [{"Key": "imgix-autoadder-upload", "Value": "failed"}]


def test_status_that_never_completes_stops_after_the_bounded_attempts(uploads: Uploads):
    uploads.stack.emulator.session_polls_to_complete = None
    obj = uploads.put("videos/slow.mp4", pseudo_random(31 * MB))
    uploads.route(ingest_event("videos/slow.mp4", obj))
    execution = uploads.wait()

    assert execution["status"] == "FAILED"
    assert len(uploads.stack.emulator.calls_to("session_status")) == 3  # UPLOAD_MAX_STATUS_POLLS
    outputs = [
        e["stateExitedEventDetails"]
        for e in uploads.history(execution["executionArn"])
        if e["type"].endswith("StateExited")
    ]
    exhausted = [
        json.loads(o["output"])["error"] for o in outputs if o["name"] == "PollingExhausted"
    ]
    assert exhausted[0]["Error"] == "UploadNotComplete"
    assert "after 3 status checks" in exhausted[0]["Cause"]


def test_duplicate_event_starts_no_second_execution(uploads: Uploads):
    obj = uploads.put("videos/twice.mp4", pseudo_random(31 * MB))
    body = ingest_event("videos/twice.mp4", obj)
    uploads.route(body)
    uploads.wait()
    assert uploads.route(body) == {"batchItemFailures": []}
    assert len(uploads.executions()) == 1
    assert len(uploads.stack.emulator.sessions) == 1


def test_1mb_object_goes_through_direct_upload(uploads: Uploads):
    data = pseudo_random(1 * MB, seed=7)
    obj = uploads.put("photos/small.jpg", data)
    assert uploads.route(ingest_event("photos/small.jpg", obj)) == {"batchItemFailures": []}

    assert uploads.executions() == []
    [call] = uploads.stack.emulator.calls_to("upload")
    assert call.raw_path.endswith("/upload/photos/small.jpg?overwrite=true")
    assert call.status == 200
    stored = uploads.stack.emulator.uploads[(uploads.stack.source_id, "photos/small.jpg")]
    assert stored.read_bytes() == data
    assert uploads.s3.list_objects_v2(Bucket=INGEST).get("KeyCount") == 0


def test_object_over_5gb_gets_a_clear_failure_in_the_dlq(uploads: Uploads):
    body = ingest_event("videos/huge.mov", {"etag": "e" * 32, "size": 6 * 1024**3})
    assert uploads.route(body) == {"batchItemFailures": []}
    assert uploads.executions() == []
    [dead] = uploads.dlq_messages()
    assert "5 GB" in dead["MessageAttributes"]["FailureReason"]["StringValue"]


def test_a_transient_failure_is_retried_by_sqs_and_the_rest_of_the_batch_goes_on(
    uploads: Uploads,
):
    good = ingest_event("photos/ok.jpg", uploads.put("photos/ok.jpg", b"x" * 1000))
    bad = ingest_event("photos/bad.jpg", uploads.put("photos/bad.jpg", b"y" * 1000))
    # Every attempt of one call fails (the client's retries: 4), fewer than open the
    # stack's breaker: an ordinary transient failure, for SQS to deliver again.
    attempts = int(os.environ["HTTP_MAX_RETRIES"]) + 1
    assert attempts < OUTAGE_THRESHOLD
    uploads.stack.emulator.faults.script(
        ["503"] * attempts, route="upload", origin_path="photos/bad.jpg"
    )
    event = sqs_event(good, bad)

    response = uploads.router.lambda_handler(event, FakeContext())

    assert failed_ids(response) == {event["Records"][1]["messageId"]}  # back to SQS, not lost
    assert list(uploads.stack.emulator.uploads) == [(uploads.stack.source_id, "photos/ok.jpg")]
    assert uploads.dlq_messages() == []


def test_an_imgix_outage_defers_a_direct_upload_and_keeps_the_ingest_object(
    uploads: Uploads, monkeypatch: pytest.MonkeyPatch
):
    sim = SimulatedTime(monkeypatch)
    emulator = uploads.stack.emulator
    data = b"z" * 5000
    body = ingest_event("photos/outage.jpg", uploads.put("photos/outage.jpg", data))
    emulator.faults.randomly(1.0, ("503",), routes={"upload"})

    # The first delivery spends its attempts (fewer than open the breaker) and is failed
    # back to SQS (a batch of one: the invocation fails); the second opens the breaker and
    # is deferred; the third calls nothing.
    with pytest.raises(BatchProcessingError):
        uploads.route(body)
    assert [uploads.route(body) for _ in range(2)] == [{"batchItemFailures": []}] * 2
    calls_while_down = len(emulator.calls_to("upload"))

    assert calls_while_down == OUTAGE_THRESHOLD
    assert uploads.dlq_messages() == []
    held = queued(INGEST_QUEUE)
    assert len(held) == 2 and all(m.delayed_until > 0 for m in held)  # back, delayed
    assert "imgix unavailable" in str(held[0].message_attributes["DeferredReason"])
    assert uploads.s3.list_objects_v2(Bucket=INGEST)["KeyCount"] == 1  # nothing lost

    emulator.faults.clear()
    sim.skip_to_next_delivery(INGEST_QUEUE)
    sim.offset_s += BASE_OPEN_S  # past the opening: the next call is the probe
    assert uploads.route(body) == {"batchItemFailures": []}
    assert emulator.uploads[(uploads.stack.source_id, "photos/outage.jpg")].read_bytes() == data


UPLOAD_OUTAGE_S = 2 * 3600


def test_an_upload_session_waits_out_hours_of_imgix_timeouts_and_opens_one_session_for_them(
    uploads: Uploads, monkeypatch: pytest.MonkeyPatch
):
    """Every imgix request times out (the emulator carries it out, then answers too late)
    for two simulated hours: the state machine's retries wait for the breaker, the create
    is never the probe (an idempotent read is), and the upload completes when imgix is
    back, with the ingest object kept until then."""
    emulator = uploads.stack.emulator
    monkeypatch.setenv("HTTP_READ_TIMEOUT", "0.5")
    emulator.timeout_delay_s = 1.0
    uploader = load_function("uploader")  # cold start with the short read timeout
    install_invoke_hook(monkeypatch, {UPLOADER_FUNCTION: uploader})
    sim = SimulatedTime(monkeypatch)
    waited: list[float] = []

    def wait_in_simulated_time(seconds: float) -> None:  # the state machine's retry waits
        waited.append(seconds)
        sim.offset_s += seconds
        if sim.offset_s >= UPLOAD_OUTAGE_S:
            emulator.faults.clear()

    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=wait_in_simulated_time))
    imgix_routes = {"create_session", "close_session", "session_status", "list_sources"}
    emulator.faults.randomly(1.0, ("timeout",), routes=imgix_routes)
    data = pseudo_random(31 * MB, seed=3)
    obj = uploads.put("videos/outage.mp4", data)

    assert uploads.route(ingest_event("videos/outage.mp4", obj)) == {"batchItemFailures": []}
    execution = uploads.wait(timeout_s=300)

    assert execution["status"] == "SUCCEEDED", execution
    assert sim.offset_s >= UPLOAD_OUTAGE_S and max(waited) <= 900  # hours, 15 min apart
    stored = emulator.uploads[(uploads.stack.source_id, "videos/outage.mp4")]
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()
    # The creates that timed out before the breaker opened may each have opened a session
    # (imgix carried them out); none was sent while it was open: the probes were reads.
    creates = emulator.calls_to("create_session")
    assert len(creates) == OUTAGE_THRESHOLD + 1
    probes = emulator.calls_to("list_sources")
    assert probes and all(c.raw_path == PROBE_PATH for c in probes)
    assert creates[-1].at > probes[-1].at  # the last create followed a probe
    [completed] = [s for s in emulator.sessions.values() if s.status == "COMPLETE"]
    assert completed.size == 31 * MB
    assert all(s.size == 0 for s in emulator.sessions.values() if s is not completed)
    assert uploads.dlq_messages() == []
    assert uploads.s3.list_objects_v2(Bucket=INGEST).get("KeyCount") == 0  # delete, once done


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://bucket.s3.us-east-1.amazonaws.com/k?X-Amz-Signature=x", True),
        ("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=x", True),
        ("https://s3.eu-west-1.amazonaws.com/bucket/k?X-Amz-Signature=x", True),
        ("https://b.s3.dualstack.us-west-2.amazonaws.com/k", True),
        ("https://b.s3-accelerate.amazonaws.com/k", True),
        ("http://bucket.s3.amazonaws.com/k", False),
        ("https://storage.googleapis.com/b/k?sig=x", False),
        ("https://ec2-3-80-1-2.compute-1.amazonaws.com/k", False),
        ("https://abc123.execute-api.us-east-1.amazonaws.com/prod/k", False),
        ("https://my-lb-1234.us-east-1.elb.amazonaws.com/k", False),
        ("https://evils3.amazonaws.com/k", False),
        ("https://s3.amazonaws.com.evil.example/k", False),
        ("https://evil.example.com/k", False),
        ("file:///etc/passwd", False),
    ],
)
def test_presigned_url_must_be_https_to_an_s3_host_by_default(url: str, ok: bool):
    from imgix_autoadder.core.settings import Settings

    pattern = Settings.upload_url_host_pattern
    if ok:
        check_presigned_url(url, pattern, allow_http=False)
    else:
        with pytest.raises(PermanentUploadError):
            check_presigned_url(url, pattern, allow_http=False)


def signatures(uploads: Uploads) -> list[str]:
    return [s.token for s in uploads.stack.emulator.sessions.values()]


def test_no_presigned_url_in_the_execution_or_the_logs(
    uploads: Uploads, capsys: pytest.CaptureFixture[str]
):
    obj = uploads.put("videos/secret.mp4", pseudo_random(31 * MB))
    uploads.route(ingest_event("videos/secret.mp4", obj))
    execution = uploads.wait()
    assert execution["status"] == "SUCCEEDED", execution

    [signature] = signatures(uploads)
    history = json.dumps(uploads.history(execution["executionArn"]), default=str)
    described = json.dumps(execution, default=str)
    logs = capsys.readouterr().out
    for text in (history, described, logs):
        assert signature not in text and "X-Amz-Signature" not in text and "_presigned" not in text
    # The URL lived in the sessions table only while the session was open.
    table = boto3.client("dynamodb").scan(TableName=UPLOAD_SESSIONS_TABLE)
    assert table["Items"] == []


def test_upload_replaces_an_existing_file_with_overwrite(uploads: Uploads):
    uploads.route(ingest_event("photos/logo.png", uploads.put("photos/logo.png", b"v1" * 500)))
    uploads.route(ingest_event("photos/logo.png", uploads.put("photos/logo.png", b"v2" * 500)))

    calls = uploads.stack.emulator.calls_to("upload")
    assert [c.status for c in calls] == [200, 200]
    assert all(c.raw_path.endswith("?overwrite=true") for c in calls)
    stored = uploads.stack.emulator.uploads[(uploads.stack.source_id, "photos/logo.png")]
    assert stored.read_bytes() == b"v2" * 500


@pytest.mark.parametrize("disposition", ["delete", "tag", "keep"])
@pytest.mark.parametrize("order", ["newest-first", "oldest-first"])
def test_the_newest_version_wins_whatever_the_delivery_order(
    uploads: Uploads, monkeypatch: pytest.MonkeyPatch, order: str, disposition: str
):
    """With the default disposition (delete), uploading v2 first and deleting that version
    makes v1 current again in the ingest bucket: S3 alone would then upload v1's late event.
    The ingest ledger's order claim keeps it out."""
    monkeypatch.setenv("INGEST_DISPOSITION", disposition)
    uploads.router = load_function("upload_router")
    old = uploads.put("photos/hero.jpg", b"old" * 400)
    new = uploads.put("photos/hero.jpg", b"new" * 400)
    events = [ingest_event("photos/hero.jpg", old), ingest_event("photos/hero.jpg", new)]
    if order == "newest-first":
        events.reverse()
    for body in events:
        assert uploads.route(body) == {"batchItemFailures": []}

    assert len(uploads.stack.emulator.calls_to("upload")) == 1  # the older event: nothing
    stored = uploads.stack.emulator.uploads[(uploads.stack.source_id, "photos/hero.jpg")]
    assert stored.read_bytes() == b"new" * 400
    origin = uploads.s3.get_object(Bucket=BUCKET, Key="images/photos/hero.jpg")["Body"].read()
    assert origin == b"new" * 400
    assert uploads.dlq_messages() == []
    if disposition == "delete" and order == "newest-first":
        # The superseded version is done with too: nothing is left to upload again.
        listed = uploads.s3.list_object_versions(Bucket=INGEST, Prefix="photos/hero.jpg")
        assert listed.get("Versions", []) == []


def test_an_older_upload_session_yields_to_a_newer_version(
    uploads: Uploads, monkeypatch: pytest.MonkeyPatch
):
    """v1's execution was started, then v2 was claimed and uploaded before v1's session was
    created: v1's execution ends as superseded (succeeded, not failed), sending nothing."""
    monkeypatch.setenv("DIRECT_UPLOAD_LIMIT_BYTES", "1000")  # both go through sessions
    uploads.router = load_function("upload_router")
    uploads.uploader = load_function("uploader")
    install_invoke_hook(monkeypatch, {UPLOADER_FUNCTION: uploads.uploader})
    old = uploads.put("videos/clip.mp4", b"o" * 1200)
    new = uploads.put("videos/clip.mp4", b"n" * 1200)
    old_body, new_body = ingest_event("videos/clip.mp4", old), ingest_event("videos/clip.mp4", new)
    router = uploads.router.router()
    old_job = router._uploader.job_for(parse_message_body(old_body)[0])
    assert router._uploader.claim(old_job)  # the router claimed v1 and started it ...
    assert uploads.route(new_body) == {"batchItemFailures": []}  # ... then v2 came
    assert uploads.wait()["status"] == "SUCCEEDED"
    uploads.stack.emulator.reset_calls()

    execution = uploads.sfn.start_execution(
        stateMachineArn=uploads.state_machine_arn,
        name="v1-late",
        input=json.dumps(router._uploader.execution_input(old_job)),
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (status := uploads.sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    assert status["status"] == "SUCCEEDED"
    assert json.loads(status["output"])["outcome"]["disposition"] == "delete"
    assert uploads.stack.emulator.calls == []  # no session for the superseded version
    stored = uploads.stack.emulator.uploads[(uploads.stack.source_id, "videos/clip.mp4")]
    assert stored.read_bytes() == b"n" * 1200
    assert uploads.s3.list_object_versions(Bucket=INGEST, Prefix="videos/").get("Versions") is None


def origin_event(uploads: Uploads, origin_path: str) -> str:
    """The origin bucket's event for the object imgix wrote there, as S3 sends it."""
    key = f"images/{origin_path}"
    head = uploads.s3.head_object(Bucket=BUCKET, Key=key)
    version = head.get("VersionId")
    record = s3_record(
        "ObjectCreated:Put" if "-" not in head["ETag"] else "ObjectCreated:CompleteMultipartUpload",
        key,
        head["ETag"].strip('"'),
        head["ContentLength"],
        version_id=version if version and version != "null" else None,
    )
    return notification(record)


@pytest.fixture
def index(uploads: Uploads) -> Any:
    """A warm indexer environment (it read its Sources at its first invocation)."""
    indexer = load_function("indexer")
    test_event = (ROOT / "events" / "s3-test-event.json").read_text()
    indexer.lambda_handler(sqs_event(test_event), FakeContext())

    def run(body: str) -> dict[str, Any]:
        result: dict[str, Any] = indexer.lambda_handler(sqs_event(body), FakeContext())
        return result

    return run


@pytest.mark.parametrize("origin_versioned", [True, False])
@pytest.mark.parametrize("size", [1000, 9 * MB])
def test_the_origin_event_of_an_ingested_file_costs_no_imgix_call(
    uploads: Uploads, index: Any, monkeypatch: pytest.MonkeyPatch, size: int
):
    """imgix writes an uploaded file into the origin bucket and indexes it; that write's
    event must not be answered with an add, a get asset or a refresh. A later real
    overwrite of the key is still refreshed. 1000 bytes: a direct upload, whose origin
    ETag is the MD5; 9 MB through an upload session (forced), stored multipart."""
    monkeypatch.setenv("DIRECT_UPLOAD_LIMIT_BYTES", "5000")
    uploads.router = load_function("upload_router")
    data = pseudo_random(size, seed=size)
    assert (
        uploads.route(ingest_event("photos/round.jpg", uploads.put("photos/round.jpg", data)))[
            "batchItemFailures"
        ]
        == []
    )
    if size > 5000:
        assert uploads.wait()["status"] == "SUCCEEDED"
    emulator = uploads.stack.emulator
    assert emulator.assets[(uploads.stack.source_id, "photos/round.jpg")]  # imgix indexed it
    emulator.reset_calls()

    assert index(origin_event(uploads, "photos/round.jpg")) == {"batchItemFailures": []}
    assert emulator.calls == []  # no add, no get asset, no refresh
    assert index(origin_event(uploads, "photos/round.jpg")) == {"batchItemFailures": []}
    assert emulator.calls == []  # the redelivery neither

    # Someone overwrites the origin object with the same size: a real change, refreshed.
    uploads.s3.put_object(Bucket=BUCKET, Key="images/photos/round.jpg", Body=data[::-1])
    assert index(origin_event(uploads, "photos/round.jpg")) == {"batchItemFailures": []}
    assert [c.route for c in emulator.calls] == ["refresh_asset"]


@pytest.mark.parametrize("disposition", ["delete", "tag"])
def test_a_redelivered_ingest_event_is_a_no_op(
    uploads: Uploads, monkeypatch: pytest.MonkeyPatch, disposition: str
):
    monkeypatch.setenv("INGEST_DISPOSITION", disposition)
    uploads.router = load_function("upload_router")
    body = ingest_event("photos/once.jpg", uploads.put("photos/once.jpg", b"x" * 1000))

    assert uploads.route(body) == {"batchItemFailures": []}
    assert uploads.route(body) == {"batchItemFailures": []}  # SQS delivered it again

    assert len(uploads.stack.emulator.calls_to("upload")) == 1
    assert uploads.dlq_messages() == []


def test_a_timed_out_execution_is_recorded_like_a_failed_one(uploads: Uploads):
    """An execution that hits its time limit skips its Catch: the status-change rule of
    template.yaml sends EventBridge's event to the uploader, which records the failure."""
    obj = uploads.put("videos/late.mp4", pseudo_random(1 * MB))
    job = uploads.router.router()._uploader.job_for(
        parse_message_body(ingest_event("videos/late.mp4", obj))[0]
    )
    event = json.loads(
        (ROOT / "events" / "eventbridge-upload-execution-timed-out.json").read_text()
    )
    event["detail"]["stateMachineArn"] = uploads.state_machine_arn
    event["detail"]["input"] = json.dumps(uploads.router.router()._uploader.execution_input(job))

    # The template's rule matches this event (EventBridge's own pattern matching, in moto).
    rule = template_rule_pattern("UploaderFunction", "UnfinishedExecutions", uploads)
    assert EventPattern.load(json.dumps(rule)).matches_event(event)
    other = {**event, "detail": {**event["detail"], "status": "SUCCEEDED"}}
    assert not EventPattern.load(json.dumps(rule)).matches_event(other)

    outcome = uploads.uploader.lambda_handler(event, FakeContext())

    assert outcome["disposition"] == "tag"
    assert "TIMED_OUT" in outcome["reason"]
    tags = uploads.s3.get_object_tagging(Bucket=INGEST, Key="videos/late.mp4")["TagSet"]
    assert tags == [{"Key": "imgix-autoadder-upload", "Value": "failed"}]


def template_rule_pattern(function: str, event_name: str, uploads: Uploads) -> dict[str, Any]:
    from tests.harness.template_iam import Resolver, sam_translate, test_resources

    parameters = {
        "OriginBucketName": BUCKET,
        "ImgixSourceIds": uploads.stack.source_id,
        "ImgixApiKeySecretArn": uploads.stack.local.secret_arn,
        "IngestBucketName": INGEST,
    }
    template = sam_translate(parameters)
    resolver = Resolver(template, parameters, test_resources())
    rule = template["Resources"][f"{function}{event_name}"]["Properties"]["EventPattern"]
    pattern: dict[str, Any] = resolver.resolve(rule)
    return pattern
