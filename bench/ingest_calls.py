"""Figure 5: imgix calls per ingested file, the origin event of imgix's own write included.

Files go through the real router (direct uploads) and the real upload-session state
machine (moto executes it; its Lambda tasks run the real uploader in this process). imgix
(the emulator) writes each file into the versioned origin bucket; that write's event is
then handed to a warm indexer. The baseline is the fewest calls imgix's documents allow:
one upload per direct file; create, close and one status check per session (the PUT goes
to the presigned URL, not the Management API); nothing for the origin event.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ORIGIN, INGEST, PREFIX = "bench-ingest-origin", "bench-ingest", "images"
UPLOADER = "imgix-autoadder-uploader"
API_ROUTES = ("upload", "create_session", "close_session", "session_status")
BASELINE = {"direct": 1, "session": 3}


def bench_ingest_calls(direct_files: int, session_files: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from localdev import lambda_hook
    from localdev.imgix_emulator import ImgixEmulator, S3Origin
    from localdev.provision import provision, provision_ingest
    from localdev.run_local import MOTO_CONFIG, LocalContext, load_handler
    from tests.harness.events import notification, s3_record, sqs_event
    from tests.harness.world import TEST_CLIENT_ENV

    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    (ROOT / "build").mkdir(exist_ok=True)
    try:
        with (
            mock_aws(config=MOTO_CONFIG),
            ImgixEmulator(api_key="bench-key", rate_limits=None) as emu,
            (ROOT / "build" / "bench-metrics.log").open("a") as sink,
            redirect_stdout(sink),
        ):
            s3 = boto3.client("s3")
            emu.account.origin = S3Origin(s3)
            local = provision(ORIGIN, "bench-key", notifications=False)
            definition = (ROOT / "statemachine" / "upload_session.asl.json").read_text()
            arn = f"arn:aws:lambda:us-east-1:123456789012:function:{UPLOADER}"
            ingest = provision_ingest(INGEST, definition, arn, notifications=False)
            source_id = emu.create_source("bench", ORIGIN, prefix=PREFIX, subdomains=["b"])
            os.environ.update(
                {
                    **local.env(emu.base_url, [source_id]),
                    **ingest.router_env(),
                    **TEST_CLIENT_ENV,
                    "UPLOAD_POLL_INTERVAL_SECONDS": "0",
                    # Sessions for small files, so that the figure costs seconds, not GBs.
                    "DIRECT_UPLOAD_LIMIT_BYTES": "5000",
                }
            )
            undo = lambda_hook.install({UPLOADER: load_handler("uploader")})
            try:
                router, indexer = load_handler("upload_router"), load_handler("indexer")
                indexer.lambda_handler(
                    sqs_event((ROOT / "events" / "s3-test-event.json").read_text()),
                    LocalContext(),
                )  # warm: the Sources are read once per environment
                emu.reset_calls()
                sequencer = 0x00A0000000000000
                paths = []
                sizes = [1000] * direct_files + [9000] * session_files
                for number, size in enumerate(sizes):
                    key = f"drop/{number:03d}.bin"
                    out = s3.put_object(Bucket=INGEST, Key=key, Body=os.urandom(size))
                    sequencer += 0x10
                    record = s3_record(
                        "ObjectCreated:Put",
                        key,
                        out["ETag"].strip('"'),
                        size,
                        sequencer=f"{sequencer:018X}",
                        bucket=INGEST,
                        version_id=out["VersionId"],
                    )
                    router.lambda_handler(sqs_event(notification(record)), LocalContext())
                    paths.append(key)
                wait_for_executions(boto3.client("stepfunctions"), ingest.state_machine_arn)
                ingest_calls = Counter(c.route for c in emu.calls if c.route in API_ROUTES)
                emu.reset_calls()
                for key in paths:
                    origin_key = f"{PREFIX}/{key}"
                    head = s3.head_object(Bucket=ORIGIN, Key=origin_key)
                    sequencer += 0x10
                    record = s3_record(
                        "ObjectCreated:Put",
                        origin_key,
                        head["ETag"].strip('"'),
                        head["ContentLength"],
                        sequencer=f"{sequencer:018X}",
                        bucket=ORIGIN,
                        version_id=head["VersionId"],
                    )
                    indexer.lambda_handler(sqs_event(notification(record)), LocalContext())
                origin_calls = len(emu.calls)
            finally:
                undo()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    direct = ingest_calls["upload"] / max(direct_files, 1)
    sessions = (ingest_calls.total() - ingest_calls["upload"]) / max(session_files, 1)
    return {
        "direct_files": direct_files,
        "session_files": session_files,
        "baseline_direct_calls": BASELINE["direct"],
        "imgix_calls_per_direct_file": direct,
        "baseline_session_calls": BASELINE["session"],
        "imgix_calls_per_session_file": sessions,
        "origin_event_imgix_calls": origin_calls,
        "calls_per_file_vs_baseline": (direct * direct_files + sessions * session_files)
        / (BASELINE["direct"] * direct_files + BASELINE["session"] * session_files),
    }


def wait_for_executions(sfn: Any, machine: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        if all(e["status"] != "RUNNING" for e in executions):
            failed = [e for e in executions if e["status"] != "SUCCEEDED"]
            if failed:
                raise RuntimeError(f"upload executions ended {failed}")
            return
        time.sleep(0.1)
    raise RuntimeError("upload executions still running")
