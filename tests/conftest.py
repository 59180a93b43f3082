"""Shared harness: moto for AWS, the imgix emulator over real HTTP, real-shaped events."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from imgix_autoadder import wiring
from imgix_autoadder.imgix.client import ImgixClient
from localdev.imgix_emulator import ImgixEmulator, S3Origin
from localdev.provision import EVENTS_QUEUE, LocalStack, provision
from tests.template_iam import (
    admin_session,
    enforce_iam,
    function_identities,
    state_machine_identity,
)

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
REGION = "us-east-1"
API_KEY = "ak_test_6f1c2d9e8b7a4c3d2e1f0a9b8c7d6e5f"
BUCKET = "imgix-autoadder-origin-example"
INGEST = "imgix-autoadder-ingest-example"
PREFIX = "images"
SUBDOMAINS = ("autoadder-demo", "autoadder-cdn")
CUSTOM_DOMAINS = ("images.example.com",)
# Every domain the Source serves from: a delete purges each (subdomains and custom domains).
DOMAINS = tuple(f"{sub}.imgix.net" for sub in SUBDOMAINS) + CUSTOM_DOMAINS
MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto with IAM enforced: the test itself acts as an administrator, and each handler
    as its own function's role (see `stack`), so a call the template does not allow fails."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "imgix-autoadder",
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        admin = admin_session().get_credentials()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_key)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # the next client reads them
        with enforce_iam():
            yield


@pytest.fixture
def emulator(aws: None) -> Iterator[ImgixEmulator]:
    # Published limits off by default so tests run fast; tests of limits switch them on.
    emu = ImgixEmulator(api_key=API_KEY, origin=S3Origin(boto3.client("s3")), rate_limits=None)
    # A scripted "timeout" holds its answer twice as long as the client waits (TEST_CLIENT_ENV):
    # the timeout path comes from this delay, never from a race with a busy CPU.
    emu.timeout_delay_s = 2 * TEST_READ_TIMEOUT_S
    with emu:
        yield emu


@pytest.fixture
def client(emulator: ImgixEmulator) -> ImgixClient:
    """The project's client against the emulator, unpaced, with the tests' timeouts."""
    return ImgixClient(
        API_KEY,
        emulator.base_url,
        read_timeout_s=TEST_READ_TIMEOUT_S,
        max_retries=2,
        backoff_factor_s=0.01,
        retry_after_max_s=2,
    )


@dataclass
class Stack:
    """What template.yaml deploys, made in moto, plus the emulator's Source for the bucket."""

    emulator: ImgixEmulator
    source_id: str
    local: LocalStack
    s3: Any
    sqs: Any
    identities: dict[str, boto3.Session]

    @property
    def dlq_url(self) -> str:
        return self.local.dlq_url

    def put(self, key: str, body: bytes = b"image-bytes") -> str:
        etag = str(self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"]).strip('"')
        return etag

    def dlq_messages(self) -> list[dict[str, Any]]:
        out = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(out.get("Messages", []))


# Deterministic client settings for tests; pacing off unless a test turns it on. The read
# timeout is generous for a loaded 2-core machine (issue: the suite passes under load).
TEST_READ_TIMEOUT_S = 3.0
TEST_CLIENT_ENV = {
    "HTTP_READ_TIMEOUT": str(TEST_READ_TIMEOUT_S),
    "HTTP_MAX_RETRIES": "3",
    "HTTP_BACKOFF_FACTOR": "0.01",
    "HTTP_RETRY_AFTER_MAX": "2",
    "IMGIX_DEFAULT_PER_SECOND": "0",
    "IMGIX_REFRESH_PER_MINUTE": "0",
    "IMGIX_UPLOAD_PER_SECOND": "0",
    "IMGIX_PURGE_PER_SECOND": "0",
}


def template_parameters(local: LocalStack, source_id: str, **extra: str) -> dict[str, str]:
    return {
        "OriginBucketName": BUCKET,
        "ImgixSourceIds": source_id,
        "ImgixApiKeySecretArn": local.secret_arn,
        "IngestBucketName": INGEST,
        **extra,
    }


@pytest.fixture
def origin_versioned() -> bool:
    """template.yaml creates the origin bucket versioned; an existing bucket may not be
    (override with @pytest.mark.parametrize("origin_versioned", [False]))."""
    return True


@pytest.fixture
def stack(
    emulator: ImgixEmulator, monkeypatch: pytest.MonkeyPatch, origin_versioned: bool
) -> Stack:
    # S3 notifications off: tests hand the handler exact, real-shaped events themselves.
    local = provision(BUCKET, API_KEY, notifications=False, versioned=origin_versioned)
    source_id = emulator.create_source(
        "origin", BUCKET, prefix=PREFIX, subdomains=SUBDOMAINS, custom_domains=CUSTOM_DOMAINS
    )
    for name, value in {**local.env(emulator.base_url, [source_id]), **TEST_CLIENT_ENV}.items():
        monkeypatch.setenv(name, value)
    # Each function reaches AWS with exactly the permissions template.yaml grants it.
    parameters = template_parameters(local, source_id)
    identities = function_identities(parameters)
    state_machine_identity(parameters)
    monkeypatch.setattr(wiring, "aws_session", lambda function: identities[function])
    return Stack(emulator, source_id, local, boto3.client("s3"), boto3.client("sqs"), identities)


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py afresh: a cold start, as Lambda would do it."""
    module_name = f"function_{name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def indexer(stack: Stack) -> ModuleType:
    return load_function("indexer")


class FakeContext:
    function_name = "imgix-autoadder-indexer"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:indexer"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/indexer"
    log_stream_name = "2026/11/23/[$LATEST]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


# -- real-shaped events ---------------------------------------------------------------------
_sequence = [0x0055AED6DCD9000000]


def next_sequencer() -> str:
    _sequence[0] += 0x100
    return f"{_sequence[0]:018X}"


def s3_record(
    event_name: str,
    key: str,
    etag: str = "",
    size: int | None = None,
    sequencer: str | None = None,
    bucket: str = BUCKET,
    version_id: str | None = None,
) -> dict[str, Any]:
    """One S3 notification record, key URL-encoded exactly as S3 sends it."""
    template = json.loads(
        (
            EVENTS / ("s3-delete.json" if event_name.startswith("ObjectRemoved") else "s3-put.json")
        ).read_text()
    )["Records"][0]
    template["eventName"] = event_name
    template["s3"]["bucket"]["name"] = bucket
    template["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "sequencer": sequencer or next_sequencer(),
    }
    if not event_name.startswith("ObjectRemoved"):
        obj.update(size=size if size is not None else 11, eTag=etag or "0" * 32)
    if version_id is not None:  # S3 adds it for a versioned bucket, after eTag
        obj["versionId"] = version_id
        obj["sequencer"] = obj.pop("sequencer")
    template["s3"]["object"] = obj
    return dict(template)


def notification(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def sqs_event(*bodies: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for these message bodies."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795424400000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795424400010",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:imgix-autoadder-events",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def queued(name: str = EVENTS_QUEUE) -> list[Any]:
    """A queue's messages as moto holds them, delayed ones included: what a deferral sent
    back to the queue (DelaySeconds hides it from ReceiveMessage for a while)."""
    from moto.sqs.models import sqs_backends

    return list(sqs_backends["123456789012"][REGION].queues[name]._messages)


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def invoke(indexer: ModuleType) -> Invoke:
    def run(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = indexer.lambda_handler(event, FakeContext())
        return result

    return run
