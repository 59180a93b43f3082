"""Benchmarks, each against a baseline measured in the same run.

    python -m bench            (make bench)      full sizes
    python -m bench --smoke                      small sizes, as CI runs it

1. indexer throughput: 100 distinct S3 events through the real handler, emulator latency
   50 ms, against a sequential one-request-per-record baseline, and against the limit
   latency x ceil(events / allowed concurrency); no 429 from the emulator allowed.
2. API calls per event: bursts with duplicates and overwrites of the same keys, against
   the number of distinct final states (the ideal: one call each).
3. cold start: import + init of each handler module in a fresh process, against a bare
   `python -c pass`.
4. upload streaming: an object from a moto S3 server through the Transfer step to the
   emulator, peak RSS and MB/s, against a plain streamed copy between the same endpoints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
PY = sys.executable

from localdev.moto_server import cpu_seconds, moto_server  # noqa: E402 - needs the paths above


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "imgix-autoadder",
    }


class Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


aws_calls: list[str] = []  # operation names of the AWS calls the handler made


def count_aws_call(model: Any, **_: Any) -> None:
    aws_calls.append(model.name)


def set_up_only_batch() -> dict[str, Any]:
    """An SQS batch for a bucket no Source serves: the indexer sets up and calls nothing."""
    from tests.conftest import notification, s3_record, sqs_event

    outside = s3_record("ObjectCreated:Put", "x.jpg", "e", bucket="not-a-source-bucket")
    return sqs_event(notification(outside))


def indexer_setup(endpoint: str, parallel: int, emulator: Any) -> tuple[Any, str, Any]:
    import boto3

    from localdev.provision import provision
    from localdev.run_local import load_handler
    from tests.conftest import TEST_CLIENT_ENV

    os.environ.update(aws_env(endpoint))
    local = provision("bench-origin", "bench-key", notifications=False)
    # The handler's clients are made from this session later, with this hook copied in.
    boto3.DEFAULT_SESSION.events.register("before-call", count_aws_call, unique_id="bench")
    source_id = emulator.create_source("bench", "bench-origin", subdomains=["bench"])
    os.environ.update(
        {
            **local.env(emulator.base_url, [source_id]),
            **TEST_CLIENT_ENV,
            "HTTP_READ_TIMEOUT": "5",
            "MAX_PARALLEL_REQUESTS": str(parallel),
        }
    )
    handler = load_handler("indexer")
    # A warm execution environment: the first invocation builds clients, reads the secret
    # and the Sources (figure 3 shows that cost).
    handler.lambda_handler(set_up_only_batch(), Context())
    return handler, source_id, boto3.client("s3")


# -- 1. throughput --------------------------------------------------------------------------
def bench_throughput(events: int, latency_s: float, parallel: int) -> dict[str, Any]:
    from imgix_autoadder.imgix_client import ImgixClient
    from localdev.imgix_emulator import ImgixEmulator
    from tests.conftest import notification, s3_record, sqs_event

    # The emulator enforces a default limit that the allowed concurrency can just sustain.
    allowed_rate = math.ceil(parallel / latency_s)
    with (
        moto_server() as endpoint,
        ImgixEmulator(
            api_key="bench-key", rate_limits={"default": (allowed_rate, 1.0)}
        ) as emulator,
    ):
        handler, source_id, s3 = indexer_setup(endpoint, parallel, emulator)
        emulator.latency_s = latency_s
        client = ImgixClient("bench-key", emulator.base_url, max_retries=0)
        started = time.perf_counter()
        for i in range(events):  # baseline: one request per record, one after another
            client.add_asset(source_id, f"baseline/{i}.jpg")
        baseline = time.perf_counter() - started

        emulator.reset_calls()
        bodies = []
        for i in range(events):  # real objects: the indexer checks S3 before calling imgix
            etag = s3.put_object(Bucket="bench-origin", Key=f"run/{i}.jpg", Body=b"x")["ETag"]
            record = s3_record(
                "ObjectCreated:Put", f"run/{i}.jpg", etag.strip('"'), bucket="bench-origin"
            )
            bodies.append(notification(record))
        event = sqs_event(*bodies)  # one invocation: SQS batches reach 10,000 with a window
        aws_calls.clear()
        standin_cpu = cpu_seconds(endpoint.pid)
        started = time.perf_counter()
        response = handler.lambda_handler(event, Context())
        measured = time.perf_counter() - started
        standin_cpu = cpu_seconds(endpoint.pid) - standin_cpu
        assert response == {"batchItemFailures": []}, response
        too_many = sum(1 for c in emulator.calls if c.status == 429)
        adds = len(emulator.calls_to("add_asset"))
        if adds != events:  # a run that skipped its work measured nothing
            raise RuntimeError(f"expected {events} adds, imgix received {adds}")
    limit = latency_s * math.ceil(events / parallel)
    return {
        "events": events,
        "latency_ms": latency_s * 1000,
        "parallel": parallel,
        "baseline_s": baseline,
        "indexer_s": measured,
        "speedup": baseline / measured,
        "limit_s": limit,
        "ratio_to_limit": measured / limit,
        "http_429": too_many,
        "adds": adds,
        # Where the time beyond the limit goes: each AWS call costs the moto stand-in
        # milliseconds of one core, while real DynamoDB and S3 answer in parallel.
        "aws_calls_per_event": len(aws_calls) / events,
        "aws_calls": dict(sorted(Counter(aws_calls).items())),
        "aws_standin_cpu_s": standin_cpu,
    }


# -- 2. API calls per event ----------------------------------------------------------------------
def bench_calls_per_event(keys: int, rounds: int) -> dict[str, Any]:
    import random

    from localdev.imgix_emulator import ImgixEmulator, S3Origin
    from tests.conftest import notification, s3_record, sqs_event

    rng = random.Random(3)
    with moto_server() as endpoint, ImgixEmulator(api_key="bench-key", rate_limits=None) as emu:
        handler, _, s3 = indexer_setup(endpoint, 4, emu)
        emu.origin = S3Origin(s3)
        emu.reset_calls()
        sequencer, events, final_states = 0x100, 0, 0
        for _ in range(rounds):
            bodies = []
            touched = rng.sample(range(keys), k=max(1, keys // 2))
            for k in touched:
                key = f"burst/{k}.jpg"
                versions = rng.randint(1, 4)  # overwrites within the burst
                for v in range(versions):
                    body = f"{key}:{sequencer}:{v}".encode()
                    etag = s3.put_object(Bucket="bench-origin", Key=key, Body=body)["ETag"]
                    sequencer += 1
                    record = notification(
                        s3_record(
                            "ObjectCreated:Put",
                            key,
                            etag.strip('"'),
                            sequencer=f"{sequencer:X}",
                            bucket="bench-origin",
                        )
                    )
                    bodies += [record] * rng.choice([1, 1, 2])  # at-least-once duplicates
                final_states += 1
            events += len(bodies)
            rng.shuffle(bodies)
            for start in range(0, len(bodies), 10):
                handler.lambda_handler(sqs_event(*bodies[start : start + 10]), Context())
        calls = len([c for c in emu.calls if c.route in ("add_asset", "refresh_asset")])
    return {
        "events": events,
        "distinct_final_states": final_states,
        "api_calls": calls,
        "calls_per_event": calls / events,
        "calls_per_final_state": calls / final_states,
    }


# -- 3. cold start -------------------------------------------------------------------------
COLD_START = """
import json, os, sys, time
t0 = time.perf_counter()
sys.path[:0] = [{layer!r}]
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = time.perf_counter()
first = None
if len(sys.argv) > 1:  # then the first invocation, which builds what the import deferred
    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "bench", 512, "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        get_remaining_time_in_millis = staticmethod(lambda: 60_000)
    module.lambda_handler(json.loads(sys.argv[1]), Context())
    first = time.perf_counter() - t1
print(json.dumps({{"import_init": t1 - t0, "first_invocation": first}}))
"""


def bench_cold_start(repeats: int) -> dict[str, Any]:
    from localdev.imgix_emulator import ImgixEmulator

    def run(code: str, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        done = subprocess.run(
            [PY, "-c", code, *args], env=env, check=True, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        return elapsed, json.loads(done.stdout.splitlines()[-1]) if done.stdout else {}

    results: dict[str, Any] = {}
    with moto_server() as endpoint, ImgixEmulator(api_key="bench-key", rate_limits=None) as emu:
        indexer_setup(endpoint, 4, emu)
        sfn_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:bench"
        env = {
            **os.environ,
            "UPLOAD_STATE_MACHINE_ARN": sfn_arn,
            "UPLOAD_SESSIONS_TABLE": "bench-sessions",
        }
        bare = statistics.median(run("pass", env)[0] for _ in range(repeats))
        results["bare_python_ms"] = bare * 1000
        for name in ("indexer", "upload_router", "uploader", "backfill"):
            code = COLD_START.format(
                layer=str(ROOT / "layers" / "common"),
                path=str(ROOT / "functions" / name / "app.py"),
            )
            total = statistics.median(run(code, env)[0] for _ in range(repeats))
            results[f"{name}_over_bare_ms"] = (total - bare) * 1000
        # Not part of the target, shown so that nothing hides: what the import no longer
        # pays, the first batch of each execution environment does (boto3, the secret, the
        # Sources).
        first_batch = json.dumps(set_up_only_batch())
        code = COLD_START.format(
            layer=str(ROOT / "layers" / "common"),
            path=str(ROOT / "functions" / "indexer" / "app.py"),
        )
        first = [run(code, env, first_batch)[1]["first_invocation"] for _ in range(repeats)]
        results["indexer_first_invocation_ms"] = statistics.median(first) * 1000
    return results


# -- 4. upload streaming --------------------------------------------------------------------
STREAM_CHILD = """
import json, sys, time
sys.path[:0] = {paths!r}
import boto3
mode, url, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3")
started = time.perf_counter()
if mode == "transfer":
    from imgix_autoadder.config import load_settings
    from imgix_autoadder.imgix_client import ImgixClient
    from imgix_autoadder.uploader import Uploader, UploadJob
    settings = load_settings({{"IMGIX_API_KEY_SECRET": "x", "IMGIX_SOURCE_IDS": "a" * 24,
        "UPLOAD_URL_HOST_PATTERN": r"^127\\.0\\.0\\.1$", "UPLOAD_URL_ALLOW_HTTP": "true",
        "UPLOAD_SESSIONS_TABLE": "bench-sessions"}})
    etag = s3.head_object(Bucket="bench-ingest", Key="big.bin")["ETag"].strip('"')
    job = UploadJob("bench-ingest", "big.bin", "", etag, size, "a" * 24, "big.bin")
    uploader = Uploader(ImgixClient("unused", "http://127.0.0.1"), s3, settings,
        session_store=boto3.client("dynamodb"))
    uploader.sessions.put("bench", url)  # as CreateSession leaves it
    uploader.transfer(job, {{"id": "bench"}})
else:  # plain: the same GET body handed to urllib3 as a streamed PUT
    import urllib3
    body = s3.get_object(Bucket="bench-ingest", Key="big.bin")["Body"]
    urllib3.PoolManager().request("PUT", url, body=body, headers={{"Content-Length": str(size)}})
seconds = time.perf_counter() - started
# VmHWM, not ru_maxrss: ru_maxrss survives execve and would report the parent's peak.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"seconds": seconds, "peak_rss_mb": int(hwm) / 1024}}))
"""


def bench_streaming(size: int) -> dict[str, Any]:
    import boto3
    from boto3.s3.transfer import TransferConfig

    from imgix_autoadder.imgix_client import ImgixClient
    from localdev.imgix_emulator import ImgixEmulator
    from tests.test_upload_streaming import GeneratedObject

    results: dict[str, Any] = {"size_mb": size / 2**20}
    with moto_server() as endpoint, ImgixEmulator(api_key="k", rate_limits=None) as emulator:
        os.environ.update(aws_env(endpoint))
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench-ingest")
        boto3.client("dynamodb").create_table(
            TableName="bench-sessions",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3.upload_fileobj(
            GeneratedObject(size),
            "bench-ingest",
            "big.bin",
            Config=TransferConfig(multipart_chunksize=64 * 2**20),
        )
        source_id = emulator.create_source("bench", "origin")
        client = ImgixClient("k", emulator.base_url)
        code = STREAM_CHILD.format(paths=[str(ROOT / "layers" / "common"), str(ROOT)])
        # Alternate the two twice and keep each one's best: one 2 GB run is noisy here.
        for mode in ("plain", "transfer", "plain", "transfer"):
            url = client.create_upload_session(source_id, f"{mode}.bin").url
            done = subprocess.run(
                [PY, "-c", code, mode, url, str(size)],
                env=os.environ,
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(done.stdout)
            speed = size / 2**20 / figures["seconds"]
            results[f"{mode}_mb_per_s"] = max(speed, results.get(f"{mode}_mb_per_s", 0.0))
            rss = max(figures["peak_rss_mb"], results.get(f"{mode}_peak_rss_mb", 0.0))
            results[f"{mode}_peak_rss_mb"] = rss
    results["throughput_vs_plain"] = results["transfer_mb_per_s"] / results["plain_mb_per_s"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    t1 = "1. indexer throughput (target: speedup >= 10, ratio_to_limit <= 1.3, http_429 = 0)"
    t4 = "4. upload streaming (target: transfer peak RSS < 100 MB, >= 0.8 of plain copy)"
    figures = {
        # 16 in flight: with 10, beating a sequential baseline 10x would need every other
        # cost, imgix's own included, to be zero.
        t1: bench_throughput(events=20 if smoke else 100, latency_s=0.05, parallel=16),
        "2. API calls per event (target: calls_per_final_state = 1)": bench_calls_per_event(
            keys=6 if smoke else 40, rounds=2 if smoke else 5
        ),
        "3. cold start (target: each handler < 300 ms over bare python)": bench_cold_start(
            repeats=1 if smoke else 5
        ),
        t4: bench_streaming(size=(64 if smoke else 2048) * 2**20),
    }
    for title, values in figures.items():
        print(f"\n{title}")
        for name, value in values.items():
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            print(f"   {name:28} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
