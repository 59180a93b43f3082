"""The indexer's batch contract with SQS: poison to the DLQ, deferred work back to the queue
with a delay, transient failures reported back to SQS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from imgix_autoadder.core import invocation
from imgix_autoadder.core.backlog import Backlog
from imgix_autoadder.core.dead_letters import DeadLetterQueue, Redelivery
from imgix_autoadder.imgix.errors import ImgixAuthError, ImgixError, ImgixUnavailable
from imgix_autoadder.indexing.coalesce import parse_or_poison
from imgix_autoadder.indexing.indexer import Indexer
from imgix_autoadder.indexing.results import BatchReport, Message, Result, Status, outcome_of
from imgix_autoadder.s3.events import misdirected_source

METRIC_NAMES = {
    "add": "Added",
    "refresh": "Refreshed",
    "purge": "Purged",
    "skipped": "Skipped",
    "defer": "Deferred",
    "poison": "DeadLettered",
    "retry": "Failed",
    "key_rejected": "ApiKeyRejected",
    "unavailable": "ImgixUnavailable",
    "sns_handshake": "SnsSubscriptionHandshakes",
}


class RetryLater(Exception):
    """Marks one SQS record failed so that SQS delivers it again (and later to the DLQ)."""


class IndexerBatchHandler:
    def __init__(
        self,
        make_indexer: Callable[[], Indexer],
        dead_letters: DeadLetterQueue,
        redelivery: Redelivery,
        logger: Logger,
        metrics: Metrics,
        reserve_s: float,
        backlog: Backlog | None = None,
    ) -> None:
        self._make_indexer = make_indexer
        self._backlog = backlog
        self._indexer: Indexer | None = None
        self._dead_letters = dead_letters
        self._redelivery = redelivery
        self._logger = logger
        self._metrics = metrics
        self._reserve_s = reserve_s
        # Every record failing is still a partial response, not an invocation error: the
        # Errors alarm then means a crash, and a failed batch of one imgix outage is not one.
        self._processor = BatchProcessor(
            event_type=EventType.SQS, raise_on_entire_batch_failure=False
        )

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        source = misdirected_source(event)
        if source:
            return self._keep_misdirected(event, source)
        # Work that cannot end before this is handed back, not timed out.
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
        deadline -= self._reserve_s
        records = event.get("Records") or []
        if self._backlog is not None:
            invocation.queue_drained_by(self._backlog.drained)
        bodies = {r.get("messageId", ""): r.get("body", "") for r in records}
        try:
            indexer = self._ready_indexer(context)
        except ImgixError as exc:
            # The Sources cannot be read: every record shares the outcome (a refused key
            # holds the batch back, a missing Source dead-letters it with the reason).
            report = BatchReport()
            shared = outcome_of(exc)
            for message_id, body in bodies.items():
                if parse_or_poison(Message(message_id, body), report, self._logger) is not None:
                    report.merge(message_id, shared)
            report.counts["key_rejected"] += int(isinstance(exc, ImgixAuthError))
            report.counts["unavailable"] += int(isinstance(exc, ImgixUnavailable))
            self._logger.error("could not read the imgix Sources", extra={"error": str(exc)})
        else:
            report = indexer.process([Message(mid, body) for mid, body in bodies.items()], deadline)
        self._dead_letter(report, bodies)
        self._defer(report, bodies)
        self._emit(report)

        def record_handler(record: SQSRecord) -> None:
            result = report.results.get(record.message_id)
            if result is None or result.status is Status.RETRY:
                raise RetryLater(result.reason if result else "record was not processed")

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=self._processor, context=context
        )
        return dict(response)

    def _keep_misdirected(self, event: dict[str, Any], source: str) -> dict[str, Any]:
        """Keep the whole event in the DLQ with the reason; raising if that fails lets
        Lambda's asynchronous retries keep it instead."""
        reason = (
            f"this event came straight from {source}, not through the SQS queue: point the "
            f"{source} trigger at the events queue, then redrive this message"
        )
        # Kept as bodies the indexer reads, so that a redrive indexes them: an S3 or
        # EventBridge event as it is, an SNS one as the notification each record carries.
        bodies = (
            [str(r.get("Sns", {}).get("Message", json.dumps(r))) for r in event["Records"]]
            if source == "SNS"
            else [json.dumps(event)]
        )
        for body in bodies:
            self._dead_letters.send(body, reason, "direct-invocation")
        self._logger.error("misdirected event kept in the DLQ", extra={"source": source})
        self._metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)
        return {"batchItemFailures": []}

    def _ready_indexer(self, context: Any) -> Indexer:
        if self._indexer is None:
            self._indexer = self._make_indexer()  # reads the Sources: once per environment
        self._indexer.register_context(context)
        return self._indexer

    def _dead_letter(self, report: BatchReport, bodies: dict[str, str]) -> None:
        for message_id, result in report.results.items():
            if result.status is not Status.POISON:
                continue
            try:
                self._dead_letters.send(bodies[message_id], result.reason, message_id)
                self._logger.warning(
                    "sent to DLQ", extra={"message_id": message_id, "reason": result.reason}
                )
            except Exception as exc:
                self._logger.error(
                    "DLQ send failed; record kept for retry",
                    extra={"message_id": message_id, "error": repr(exc)[:300]},
                )
                report.results[message_id] = Result(Status.RETRY, result.reason)

    def _defer(self, report: BatchReport, bodies: dict[str, str]) -> None:
        for message_id, result in report.results.items():
            if result.status is not Status.DEFER:
                continue
            try:
                delay = self._redelivery.send(
                    bodies[message_id], result.delay_s, result.reason, message_id
                )
                self._logger.info(
                    "deferred",
                    extra={"message_id": message_id, "delay_s": delay, "reason": result.reason},
                )
            except Exception as exc:
                self._logger.error(
                    "deferral failed; record failed back to SQS",
                    extra={"message_id": message_id, "error": repr(exc)[:300]},
                )
                report.results[message_id] = Result(Status.RETRY, result.reason)

    def _emit(self, report: BatchReport) -> None:
        for name, value in report.counts.items():
            if value:
                self._metrics.add_metric(
                    name=METRIC_NAMES.get(name, name), unit=MetricUnit.Count, value=value
                )
        for ms in report.api_latency_ms[:100]:  # EMF keeps at most 100 values per metric
            self._metrics.add_metric(name="ApiLatency", unit=MetricUnit.Milliseconds, value=ms)
        for age in report.event_age_s[:100]:
            self._metrics.add_metric(name="EventAge", unit=MetricUnit.Seconds, value=age)
