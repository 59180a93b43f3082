"""The main job, locally: moto + the imgix emulator + the real indexer handler.

    python -m localdev.run_local        (or: make run)

Creates what template.yaml deploys (in moto), an imgix Source in the emulator, then puts,
overwrites and deletes objects in the origin bucket. Real S3 notifications land in the SQS
queue; the queue is drained into the real handler the way Lambda's event source mapping
does it. Prints what imgix received and checks imgix's final state against S3.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto import mock_aws

from localdev import lambda_hook
from localdev.imgix_emulator import PUBLISHED_LIMITS, Call, ImgixEmulator, S3Origin
from localdev.provision import provision, provision_ingest
from localdev.sqs_source import drain

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "imgix-autoadder-local-origin"
INGEST_BUCKET = "imgix-autoadder-local-ingest"
UPLOADER = "imgix-autoadder-uploader"
PREFIX = "images"
API_KEY = "local-emulator-key-0123456789abcdef"
MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


class LocalContext:
    function_name = "imgix-autoadder-local"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def load_handler(name: str) -> ModuleType:
    """Import functions/<name>/app.py with the layer on the path, as /opt/python is in Lambda."""
    layer = str(ROOT / "layers" / "common")
    if layer not in sys.path:
        sys.path.insert(0, layer)
    spec = importlib.util.spec_from_file_location(
        f"local_{name}", ROOT / "functions" / name / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def show(title: str, calls: list[Call]) -> None:
    print(f"\n== {title}")
    if not calls:
        print("   (imgix received nothing)")
    for call in calls:
        print(f"   {call.method:5} {call.raw_path:70} -> {call.status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show the handler's JSON logs")
    args = parser.parse_args(argv)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_LOG_LEVEL": "INFO" if args.verbose else "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "false" if args.verbose else "true",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws(config=MOTO_CONFIG):
        s3 = boto3.client("s3")
        emulator = ImgixEmulator(
            api_key=API_KEY, origin=S3Origin(s3), rate_limits=dict(PUBLISHED_LIMITS)
        )
        with emulator:
            return run(emulator, s3)


def run(emulator: ImgixEmulator, s3: Any) -> int:
    # moto sends no delete events for a versioned bucket
    local = provision(BUCKET, API_KEY, versioned=False, tag_events=True)
    source_id = emulator.create_source(
        "local-demo", BUCKET, prefix=PREFIX, subdomains=["autoadder-demo"]
    )
    os.environ.update(local.env(emulator.base_url, [source_id]))
    # S3 user metadata x-amz-meta-sku becomes the custom field s3_sku (MetadataFields), the
    # tag Season the field s3_season (TagFields).
    os.environ.update(
        {"METADATA_FIELDS": "sku", "TAG_FIELDS": "Season", "CUSTOM_FIELD_PREFIX": "s3_"}
    )
    print(f"imgix emulator on {emulator.base_url}; Source {source_id}: s3://{BUCKET}/{PREFIX}/")
    print("published rate limits enforced; client paced to them")
    indexer = load_handler("indexer")
    sqs = boto3.client("sqs")

    def step(title: str) -> None:
        before = len(emulator.calls)
        started = time.monotonic()
        stats = drain(sqs, local.queue_url, indexer.lambda_handler, LocalContext())
        show(
            f"{title}  [{stats.delivered} messages, {stats.invocations} invocations, "
            f"{time.monotonic() - started:.2f}s]",
            emulator.calls[before:],
        )

    for key, body in [
        ("images/hero.jpg", b"hero v1"),
        ("images/summer sale/banner 1+1.png", b"banner"),
        ("images/café/日本.webp", b"unicode"),
        ("images/../escape.jpg", b"dot-dot"),
        ("images/new folder/", b""),
        ("docs/readme.txt", b"outside the Source prefix"),
    ]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    step(
        "put 6 objects (1 folder marker, 1 outside the prefix): 4 adds expected, "
        "after the first invocation's Source lookup"
    )

    s3.put_object(Bucket=BUCKET, Key="images/hero.jpg", Body=b"hero v2")
    step("overwrite images/hero.jpg: 1 refresh expected")

    s3.delete_object(Bucket=BUCKET, Key="images/summer sale/banner 1+1.png")
    step("delete 'images/summer sale/banner 1+1.png': 1 purge expected")

    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key="images/burst.jpg", Body=f"burst {i}".encode())
    step("3 quick overwrites of images/burst.jpg in one batch: 1 add expected")

    s3.put_object(Bucket=BUCKET, Key="images/shoe.jpg", Body=b"shoe", Metadata={"sku": "SHOE-1"})
    step("put images/shoe.jpg with x-amz-meta-sku: 1 add, then its custom field s3_sku")
    s3.copy_object(
        Bucket=BUCKET,
        Key="images/shoe.jpg",
        CopySource={"Bucket": BUCKET, "Key": "images/shoe.jpg"},
        MetadataDirective="REPLACE",
        Metadata={"sku": "SHOE-2"},
    )
    step("change only its x-amz-meta-sku: its field patched, no refresh")
    s3.put_object_tagging(
        Bucket=BUCKET,
        Key="images/shoe.jpg",
        Tagging={"TagSet": [{"Key": "Season", "Value": "summer"}]},
    )
    step("tag it Season=summer: its field s3_season patched, no refresh")

    upload_problems = demo_uploads(emulator, s3, sqs, source_id, step)

    problems = check_consistency(emulator, s3, source_id) + upload_problems
    dead = sqs.get_queue_attributes(
        QueueUrl=local.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    print("\n== imgix Asset Manager now holds")
    for (_, path), asset in sorted(emulator.assets.items()):
        fields = asset.editable.get("custom_fields") or ""
        print(f"   /{path:45} etag={asset.etag} version={asset.version} {fields}".rstrip())
    print(f"   purged: {emulator.purges}")
    print(f"\nDLQ messages: {dead}")
    if problems:
        print("INCONSISTENT:\n  " + "\n  ".join(problems))
        return 1
    print("OK: every object under the prefix is indexed with its current ETag")
    return 0


def demo_uploads(
    emulator: ImgixEmulator, s3: Any, sqs: Any, source_id: str, step: Any
) -> list[str]:
    """Push files into imgix through the ingest bucket: one large, one small."""
    ingest = provision_ingest(
        INGEST_BUCKET,
        (ROOT / "statemachine" / "upload_session.asl.json").read_text(),
        f"arn:aws:lambda:us-east-1:123456789012:function:{UPLOADER}",
    )
    os.environ.update(ingest.env())
    undo = lambda_hook.install({UPLOADER: load_handler("uploader")})
    router = load_handler("upload_router")
    sfn = boto3.client("stepfunctions")
    big = bytes(range(256)) * (48 * 1024 * 4)  # 48 MiB: over the 30 MB direct-upload limit
    try:
        s3.put_object(Bucket=INGEST_BUCKET, Key="videos/launch film.mp4", Body=big)
        s3.put_object(Bucket=INGEST_BUCKET, Key="photos/small.jpg", Body=b"j" * 1024 * 1024)
        before, started = len(emulator.calls), time.monotonic()
        stats = drain(sqs, ingest.queue_url, router.lambda_handler, LocalContext())
        deadline = time.monotonic() + 120
        executions = sfn.list_executions(stateMachineArn=ingest.state_machine_arn)["executions"]
        while any(e["status"] == "RUNNING" for e in executions) and time.monotonic() < deadline:
            time.sleep(0.2)
            executions = sfn.list_executions(stateMachineArn=ingest.state_machine_arn)["executions"]
        show(
            f"ingest 48 MiB video (upload session via Step Functions) and 1 MiB photo "
            f"(direct upload)  [{stats.delivered} messages, {time.monotonic() - started:.2f}s]",
            emulator.calls[before:],
        )
        print(f"   upload-session executions: {[e['status'] for e in executions]}")
    finally:
        undo()
    # imgix wrote both files to the Source's storage: the origin bucket's events follow.
    step("origin events for the files imgix wrote: nothing to do (imgix indexed them as it wrote)")
    problems = []
    stored = emulator.uploads.get((source_id, "videos/launch film.mp4"))
    if [e["status"] for e in executions] != ["SUCCEEDED"]:
        problems.append(f"upload session executions ended {executions}")
    elif stored is None or stored.read_bytes() != big:
        problems.append("the bytes imgix received differ from the ingest object")
    return problems


def check_consistency(emulator: ImgixEmulator, s3: Any, source_id: str) -> list[str]:
    problems = []
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/").get("Contents", [])
    for obj in listed:
        if obj["Key"].endswith("/"):
            continue
        path = obj["Key"][len(PREFIX) + 1 :]
        asset = emulator.assets.get((source_id, path))
        if asset is None or asset.etag != obj["ETag"].strip('"'):
            problems.append(f"{obj['Key']}: S3 etag {obj['ETag']} but imgix has {asset}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
