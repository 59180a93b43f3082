"""Figure 1: how much of imgix's published limits the product uses, and how fresh that
keeps the Asset Manager.

Each case starts E separate processes, one per Lambda execution environment, as the SQS
event source mapping runs them. They share the burst of events (each takes every E-th)
and call imgix through the project's client, paced by the shared rate budget
(imgix_autoadder/rate_budget.py) in a DynamoDB table on a moto server. The emulator
enforces the published limits per account: the real limits, not raised ones.

Figures per case: achieved rate / published limit (calls over the span from the first to
the last), 429s, freshness p50/p99 (burst start to the call) beside the floor n / limit,
and the AWS (DynamoDB) calls per imgix call. The environments are warm when the burst
arrives (started, imports done), as Lambda keeps them; the outside user calls at a steady
rate from before the burst to its end.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_KEY = "bench-key"
PUBLISHED = {"add": 4.0, "purge": 10.0, "refresh": 10.0 / 60.0}

CHILD = """
import json, sys, threading, time
sys.path[:0] = {paths!r}
import boto3
from imgix_autoadder.imgix_client import ImgixClient, Pacers
from imgix_autoadder.rate_budget import SharedRateLimiter

job = json.loads(sys.argv[1])
ddb = boto3.client("dynamodb")
def shared(limit_class, per_second):
    return SharedRateLimiter(ddb, job["table"], job["account"], limit_class, per_second)
pacers = Pacers(shared("default", 4.0), shared("refresh", 10 / 60), shared("upload", 2.0),
                shared("purge", 10.0), shared("get_asset", 10.0))
client = ImgixClient(job["key"], job["base_url"], max_retries=8, backoff_factor_s=0.5,
                     pacers=pacers, max_pacing_wait_s=3600)
records, lock = [], threading.Lock()
# Warm environments, as Lambda keeps them: imports and clients are ready before the burst.
time.sleep(max(0.0, job["start_at"] - time.time()))
errors = []
def call(item):
    if job["operation"] == "add":
        client.add_asset(job["source_id"], item)
    elif job["operation"] == "refresh":
        client.refresh_asset(job["source_id"], item)
    else:
        client.purge(f"https://bench.imgix.net/{{item}}")
def work(items):
    for item in items:
        for attempt in range(5):  # a failed record comes back, as SQS redelivers it
            try:
                call(item)
                break
            except Exception as exc:
                errors.append(f"{{type(exc).__name__}}: {{exc}}"[:200])
                time.sleep(1)
        with lock:
            records.append(time.time())
items = job["items"]
threads = [threading.Thread(target=work, args=(items[i::job["threads"]],))
           for i in range(job["threads"])]
for t in threads: t.start()
for t in threads: t.join()
aws = sum(p.aws_calls for p in (pacers.default, pacers.refresh, pacers.upload, pacers.purge,
                                pacers.get_asset))
print(json.dumps({{"called_at": records, "aws_calls": aws, "errors": errors}}))
"""

OUTSIDER = """
import sys, time, requests
base, key, per_second, until = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
while time.time() < until:
    requests.get(base + "/api/v1/sources", headers={"Authorization": "Bearer " + key}, timeout=5)
    time.sleep(1 / per_second)
"""


def run_case(
    endpoint: str,
    operation: str,
    events: int,
    environments: int,
    stacks: int = 1,
    outsider_per_second: float = 0.0,
) -> dict[str, Any]:
    """One burst of `events`, shared by `environments` processes per stack; stacks share
    the account and the budget table (the RateBudgetTableName parameter)."""
    import boto3

    from localdev.imgix_emulator import PUBLISHED_LIMITS, ImgixEmulator
    from localdev.provision import create_rate_budget_table

    table = f"budget-{operation}-{environments}-{stacks}-{int(outsider_per_second)}"
    aws = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    create_rate_budget_table(dynamodb, table)
    with ImgixEmulator(api_key=ACCOUNT_KEY, rate_limits=PUBLISHED_LIMITS) as emulator:
        emulator.purge_api.repeat_answer = "200"
        source_id = emulator.create_source("bench", "bench-origin", subdomains=["bench"])
        items = [f"burst/{i}.jpg" for i in range(events)]
        processes = environments * stacks
        env = {**os.environ, **aws}
        child = CHILD.format(paths=[str(ROOT / "layers" / "common"), str(ROOT)])
        # The burst arrives once every environment is warm (each process takes ~0.5 s of CPU
        # to start; ten of them share this machine's cores).
        started = time.time() + 1.0 + 0.4 * environments * stacks
        outsider = None
        if outsider_per_second:
            until = str(started + 3600)
            outsider = subprocess.Popen(
                [sys.executable, "-c", OUTSIDER, emulator.base_url, ACCOUNT_KEY,
                 str(outsider_per_second), until],
                env=env,
            )  # fmt: skip
        children = []
        for number in range(processes):
            job = {
                "table": table,
                "account": "bench",
                "key": ACCOUNT_KEY,
                "base_url": emulator.base_url,
                "source_id": source_id,
                "operation": operation,
                "items": items[number::processes],
                "threads": 4,  # MAX_PARALLEL_REQUESTS
                "start_at": started,
            }
            children.append(
                subprocess.Popen(
                    [sys.executable, "-c", child, json.dumps(job)],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        results = [json.loads(c.communicate()[0]) for c in children]
        if outsider is not None:
            outsider.terminate()
            outsider.wait()
        route = {"add": "add_asset", "refresh": "refresh_asset", "purge": "purge"}[operation]
        ours = emulator.calls_to(route)
        throttled = sum(1 for c in ours if c.status == 429)
    called = sorted(t for r in results for t in r["called_at"])
    failures = [e for r in results for e in r["errors"]]
    if len(called) != events:
        raise RuntimeError(f"{operation}: {len(called)} of {events} calls succeeded")
    limit = PUBLISHED[operation]
    span = called[-1] - called[0]
    freshness = [t - started for t in called]
    return {
        "environments": processes,
        "events": events,
        "ratio_to_limit": (events - 1) / span / limit if span > 0 else 0.0,
        "http_429": throttled,
        "http_429_share": throttled / len(ours) if ours else 0.0,
        "freshness_p50_s": statistics.median(freshness),
        "freshness_p99_s": freshness[max(0, math.ceil(0.99 * len(freshness)) - 1)],
        "floor_s": events / limit,
        "aws_calls_per_imgix_call": sum(r["aws_calls"] for r in results) / events,
        "records_redelivered": len(failures),
    }


def bench_rate_use(smoke: bool) -> dict[str, dict[str, Any]]:
    from localdev.moto_server import moto_server

    sizes = {"add": 12, "purge": 30, "refresh": 0} if smoke else {
        "add": 400, "purge": 400, "refresh": 16,
    }  # fmt: skip
    environments = (1, 3) if smoke else (1, 2, 3, 10)
    cases: dict[str, dict[str, Any]] = {}
    with moto_server() as endpoint:
        for operation, events in sizes.items():
            if not events:
                continue
            for count in environments:
                cases[f"{operation}, {count} env"] = run_case(endpoint, operation, events, count)
            if not smoke:
                cases[f"{operation}, 2 stacks x 3 env"] = run_case(
                    endpoint, operation, events, 3, stacks=2
                )
        if not smoke:
            cases["add, 3 env + outside user 1/s"] = run_case(
                endpoint, "add", sizes["add"], 3, outsider_per_second=1.0
            )
    return cases
