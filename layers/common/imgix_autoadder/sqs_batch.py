"""The indexer's batch contract with SQS: poison to the DLQ, transient back to the queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from imgix_autoadder.dead_letters import DeadLetterQueue
from imgix_autoadder.indexer import BatchReport, Indexer, Message, Result, Status

METRIC_NAMES = {
    "add": "Added",
    "refresh": "Refreshed",
    "purge": "Purged",
    "skipped": "Skipped",
    "poison": "DeadLettered",
    "retry": "Failed",
}


class RetryLater(Exception):
    """Marks one SQS record failed so that SQS delivers it again (and later to the DLQ)."""


class IndexerBatchHandler:
    def __init__(
        self, indexer: Indexer, dead_letters: DeadLetterQueue, logger: Logger, metrics: Metrics
    ) -> None:
        self._indexer = indexer
        self._dead_letters = dead_letters
        self._logger = logger
        self._metrics = metrics
        self._processor = BatchProcessor(event_type=EventType.SQS)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._indexer.register_context(context)
        records = event.get("Records") or []
        bodies = {r.get("messageId", ""): r.get("body", "") for r in records}
        report = self._indexer.process([Message(mid, body) for mid, body in bodies.items()])
        self._dead_letter(report, bodies)
        self._emit(report)

        def record_handler(record: SQSRecord) -> None:
            result = report.results.get(record.message_id)
            if result is None or result.status is Status.RETRY:
                raise RetryLater(result.reason if result else "record was not processed")

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=self._processor, context=context
        )
        return dict(response)

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

    def _emit(self, report: BatchReport) -> None:
        for name, value in report.counts.items():
            self._metrics.add_metric(
                name=METRIC_NAMES.get(name, name), unit=MetricUnit.Count, value=value
            )
        for ms in report.api_latency_ms[:100]:  # EMF keeps at most 100 values per metric
            self._metrics.add_metric(name="ApiLatency", unit=MetricUnit.Milliseconds, value=ms)
