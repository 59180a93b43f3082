"""The test world: the stack as template.yaml deploys it (in moto), its names, and a Lambda
context; each function loaded afresh, as a cold start would."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from localdev.imgix_emulator import ImgixEmulator
from localdev.provision import LocalStack

ROOT = Path(__file__).resolve().parents[2]
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


@dataclass
class Stack:
    """What template.yaml deploys, made in moto, plus the emulator's Source for the bucket."""

    emulator: ImgixEmulator
    source_id: str
    local: LocalStack
    s3: Any
    sqs: Any
    identities: Mapping[str, boto3.Session]

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


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py afresh: a cold start, as Lambda would do it."""
    module_name = f"function_{name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


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


Invoke = Callable[[dict[str, Any]], dict[str, Any]]
