"""One Lambda execution environment of the indexer, for figure 1 (bench/rate_use.py):

    python -m bench.environment        (the environment comes from the parent)

Loads the real handler (functions/indexer/app.py), warms it as Lambda keeps a warm
environment (its first invocation reads the secret and the Sources), prints "ready", then
does what the SQS event source mapping does: receive up to 10 messages, invoke the handler
with them, delete every one it did not report as failed. It stops when its standard input
closes, and prints what the shared rate budget cost in DynamoDB calls.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]


class Context:
    function_name = "bench-indexer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-indexer"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def main() -> int:
    import os

    import boto3

    from imgix_autoadder import wiring
    from localdev.run_local import load_handler
    from localdev.sqs_source import lambda_sqs_event

    pacers: list[Any] = []
    build = wiring.build_pacers

    def counted(*args: Any, **kw: Any) -> Any:
        made = build(*args, **kw)
        pacers.extend([made.default, made.refresh, made.upload, made.purge, made.get_asset])
        return made

    wiring.build_pacers = counted
    handler = load_handler("indexer")
    test_event = (ROOT / "events" / "s3-test-event.json").read_text()
    handler.lambda_handler(
        lambda_sqs_event(
            [{"MessageId": "warm", "ReceiptHandle": "w", "Body": test_event}], "", REGION
        ),
        Context(),
    )

    def count(what: str) -> int:  # the shared budget's DynamoDB calls (rate/lane_table.py)
        return sum(getattr(getattr(p, "table", None), what, 0) for p in pacers)

    def writes_by() -> Counter[str]:  # the same, by kind: claim, lost, renew, release, ...
        kinds: Counter[str] = Counter()
        for pacer in pacers:
            kinds.update(getattr(getattr(pacer, "table", None), "writes_by", {}))
        return kinds

    budget_calls_at_start = count("calls")
    budget_writes_at_start = count("writes")
    writes_by_at_start = writes_by()
    sqs = boto3.client("sqs")
    queue_url = os.environ["EVENTS_QUEUE_URL"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    stop = threading.Event()

    def stop_at_end_of_input() -> None:
        sys.stdin.read()  # the parent closes our stdin to stop us
        stop.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    # Lambda's pollers receive the next batch while the function runs the current one, and
    # delete what it finished meanwhile: so does this, off the handler's path.
    batches: queue.Queue[list[Any]] = queue.Queue(maxsize=1)
    finished: queue.Queue[list[dict[str, Any]]] = queue.Queue()

    def poll() -> None:
        while not stop.is_set():
            received = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if received:
                batches.put(received)

    def delete() -> None:
        while True:
            done = finished.get()
            if not done:
                return
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )

    threading.Thread(target=poll, daemon=True).start()
    deleter = threading.Thread(target=delete, daemon=True)
    deleter.start()
    print("ready", flush=True)
    invocations = 0
    while not stop.is_set():
        try:
            received = batches.get(timeout=0.5)
        except queue.Empty:
            continue
        response = handler.lambda_handler(lambda_sqs_event(received, queue_arn, REGION), Context())
        invocations += 1
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        finished.put([m for m in received if m["MessageId"] not in failed])
    finished.put([])
    deleter.join()
    budget_calls = count("calls") - budget_calls_at_start
    budget_writes = count("writes") - budget_writes_at_start
    report = {
        "budget_aws_calls": budget_calls,
        "budget_aws_writes": budget_writes,
        "budget_aws_writes_by": dict(writes_by() - writes_by_at_start),
    }
    print(json.dumps({**report, "invocations": invocations}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
