"""Auditor Lambda: one slice of the scheduled audit (statemachine/audit.asl.json).

`forward` asks imgix about S3's keys from `resume`; `backward` asks S3 about imgix's assets
from the cursor `resume`; each stops before the invocation's deadline and returns where the
next slice starts, with the counts so far. `publish` emits them as metrics.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Any

from imgix_autoadder.core.call_tally import imgix_calls_counted
from imgix_autoadder.core.config import load_settings
from imgix_autoadder.core.observability import make_logger, make_metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgix_autoadder.imgix.client import ImgixClient

logger = make_logger()
metrics = make_metrics()
settings = load_settings(function="auditor")
# The metrics a finished audit publishes, per verdict (audit/classify.py's values).
AUDIT_METRICS = {
    "AssetsMissing": "missing",
    "AssetsStale": "stale",
    "AssetsDeletedAtOrigin": "deleted at origin",
    "AssetsInSync": "in sync",
}
SLICE_S = 600.0  # of the function's 900 s timeout


@cache
def parts() -> tuple[ImgixClient, Any]:
    from imgix_autoadder.wiring import aws_client, aws_session, patient_client  # boto3: first use

    session = aws_session("AuditorFunction")
    # Its work cannot be handed back: it waits for the budget's idle slots, to its deadline.
    return patient_client(settings, session), aws_client(session, "s3")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@imgix_calls_counted(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    counts: Counter[str] = Counter(event.get("counts") or {})
    if event["action"] == "publish":
        for name, verdict in AUDIT_METRICS.items():
            metrics.add_metric(name=name, unit="Count", value=counts.get(verdict, 0))
        logger.info("audit done", extra={"source_id": event.get("source_id"), "counts": counts})
        return {"source_id": event.get("source_id"), "counts": dict(counts)}

    from imgix_autoadder.audit.slices import backward, forward
    from imgix_autoadder.sources.source_map import Source

    client, s3 = parts()
    remaining_s = context.get_remaining_time_in_millis() / 1000 - settings.handler_reserve_s
    started = time.monotonic()
    client.deadline = started + remaining_s  # no imgix call that could outlast the function
    # A slice ends well before that: the steps after its end still finish in time.
    ends = started + min(SLICE_S, remaining_s / 2)
    source = Source.from_api(client.get_source(event["source_id"]))
    resume = str(event.get("resume") or "")
    if event["action"] == "forward":
        done = forward(client, s3, source, resume, ends)
    else:
        done = backward(client, s3, source, resume or "0", ends)
    counts.update(done.counts)
    return {"source_id": source.id, "resume": done.resume, "counts": dict(counts)}
