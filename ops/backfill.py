"""Index the objects already in the bucket (before the stack, or missed) into imgix.

    python -m ops backfill --state-machine-arn ARN --bucket B [--prefix P] [--no-wait]

Starts the backfill state machine (a Distributed Map over s3:listObjectsV2) and reports
progress from its map run until it ends: items succeeded, failed, pending.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3

from ops import command_parser


def start(
    sfn: Any, state_machine_arn: str, bucket: str, prefix: str, tolerated_failure_pct: int = 100
) -> str:
    """Failed items are tolerated by default: the run goes on and reports them at the end."""
    name = f"backfill-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6}"
    arn: str = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=name,
        input=json.dumps(
            {
                "bucket": bucket,
                "prefix": prefix,
                "tolerated_failure_percentage": tolerated_failure_pct,
            }
        ),
    )["executionArn"]
    return arn


def progress(sfn: Any, execution_arn: str) -> dict[str, Any]:
    status = sfn.describe_execution(executionArn=execution_arn)["status"]
    counts: dict[str, Any] = {}
    try:
        runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if runs:
            counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
    except Exception:
        counts = {}
    return {
        "status": status,
        **{
            k: counts[k]
            for k in ("total", "succeeded", "failed", "pending", "running")
            if k in counts
        },
    }


def wait(
    sfn: Any,
    execution_arn: str,
    report: Callable[[dict[str, Any]], None],
    interval_s: float = 10.0,
    timeout_s: float = 7 * 24 * 3600,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        current = progress(sfn, execution_arn)
        report(current)
        if current["status"] != "RUNNING" or time.monotonic() > deadline:
            return current
        time.sleep(interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("backfill", __doc__)
    parser.add_argument(
        "--state-machine-arn", required=True, help="the stack's BackfillStateMachineArn output"
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="only keys under this prefix")
    parser.add_argument("--no-wait", action="store_true", help="start and return")
    args = parser.parse_args(argv)
    sfn = boto3.client("stepfunctions")
    execution_arn = start(sfn, args.state_machine_arn, args.bucket, args.prefix)
    print(f"started {execution_arn}")
    if args.no_wait:
        return 0
    final = wait(sfn, execution_arn, lambda p: print(json.dumps(p)))
    return 0 if final["status"] == "SUCCEEDED" else 1
