"""Cold start: handlers validate Settings at import and build everything else on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.harness.events import notification, s3_record, sqs_event
from tests.harness.world import ROOT, Invoke, Stack

# What the first invocation loads, never the import: together ~500 ms of a cold start here.
HEAVY = (
    "boto3",
    "botocore.session",  # Powertools imports the bare botocore package (0.5 ms) for its user agent
    "requests",
    "aws_xray_sdk",  # no tracing is configured, so X-Ray is never loaded at all
    "pydantic",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.batch",
)

IMPORT_AND_REPORT = """
import importlib.util, json, sys
sys.path[:0] = [{layer!r}]
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""

HANDLER_ENV = {
    "IMGIX_API_KEY_SECRET": "imgix-autoadder/api-key",
    "IMGIX_SOURCE_IDS": "a" * 24,
    "STATE_TABLE": "state",
    "IDEMPOTENCY_TABLE": "idempotency",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/events",
    "INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
    "UPLOAD_SESSIONS_TABLE": "upload-sessions",
    "UPLOAD_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:upload",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "imgix-autoadder",
}


def import_handler(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = IMPORT_AND_REPORT.format(
        layer=str(ROOT / "layers" / "common"),
        path=str(ROOT / "functions" / name / "app.py"),
        heavy=HEAVY,
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["indexer", "upload_router", "uploader", "backfill"])
def test_importing_a_handler_loads_no_aws_sdk_http_client_or_xray(name: str):
    done = import_handler(name, HANDLER_ENV)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_bad_configuration_still_fails_the_cold_start_naming_every_problem():
    env = {**HANDLER_ENV, "IMGIX_SOURCE_IDS": "not-a-source-id"}
    del env["STATE_TABLE"]
    done = import_handler("indexer", env)
    assert done.returncode != 0
    assert "IMGIX_SOURCE_IDS" in done.stderr
    assert "STATE_TABLE" in done.stderr


def test_the_first_invocation_builds_once_and_later_ones_reuse_it(stack: Stack, invoke: Invoke):
    for n in range(3):
        key = f"images/warm-{n}.jpg"
        etag = stack.put(key)
        invoke(sqs_event(notification(s3_record("ObjectCreated:Put", key, etag))))

    assert len(stack.emulator.calls_to("get_source")) == 1  # Sources read once, not per batch
    assert len(stack.emulator.calls_to("add_asset")) == 3
