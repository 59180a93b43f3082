"""Backfill Lambda: one object listed by the backfill state machine's Distributed Map.

Transient failures raise TransientIndexError (the map retries with jittered backoff);
permanent ones raise PermanentIndexError and count as the map run's failed items.
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from imgix_autoadder.core.call_tally import imgix_calls_counted
from imgix_autoadder.core.config import load_settings
from imgix_autoadder.core.observability import make_logger, make_metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgix_autoadder.indexing.indexer import Indexer

logger = make_logger()
metrics = make_metrics()
settings = load_settings(function="backfill")


@cache
def indexer() -> Indexer:
    from imgix_autoadder.wiring import build_backfill_indexer  # boto3 and friends: first use

    return build_backfill_indexer(settings, logger)


class TransientIndexError(Exception):
    """Retried by the map's Retry policy."""


class PermanentIndexError(Exception):
    """Counted as a failed item of the map run; the reason is in the message and the log."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@imgix_calls_counted(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from imgix_autoadder.indexing.results import Status  # loaded with indexer() anyway
    from imgix_autoadder.s3.events import ObjectChange

    listed = event["object"]
    change = ObjectChange(
        bucket=event["bucket"],
        key=listed["Key"],
        removed=False,
        sequencer="",  # a listing has no sequencer: any real event for the key outranks it
        etag=str(listed.get("ETag", "")).strip('"'),
        size=listed.get("Size"),
        version_id="",
        event_name="Backfill",
        event_time=str(listed.get("LastModified", "")),
    )
    # No imgix call starts that could end after the invocation's timeout (10 s reserve).
    remaining_s = context.get_remaining_time_in_millis() / 1000 - settings.handler_reserve_s
    # An item `ops audit --fix` named carries the audit's verdict: imgix lacks it (missing)
    # or holds an older copy (stale), whatever the state table says it was told.
    retell = listed.get("Audit") in ("missing", "stale")
    result = indexer().index_existing(change, time.monotonic() + remaining_s, retell)
    metrics.add_metric(
        name=f"Backfill{result.status.value.title()}", unit=MetricUnit.Count, value=1
    )
    if result.status in (Status.RETRY, Status.DEFER):  # the map retries it, with backoff
        raise TransientIndexError(result.reason)
    if result.status is Status.POISON:
        logger.error("backfill failed", extra={"key": change.key, "reason": result.reason})
        raise PermanentIndexError(result.reason)
    return {"outcome": f"{result.status.value}: {result.reason}"}
