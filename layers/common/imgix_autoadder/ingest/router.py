"""Route each new ingest-bucket object: direct upload, or one upload-session execution."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from imgix_autoadder.core.dead_letters import DeadLetterQueue, Redelivery
from imgix_autoadder.ingest.job import (
    ImgixUnavailableError,
    PermanentUploadError,
    TransientUploadError,
)
from imgix_autoadder.ingest.uploader import Uploader
from imgix_autoadder.s3.events import PoisonRecord, SubscriptionHandshake, parse_message_body

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class IngestRouter:
    def __init__(
        self,
        uploader: Uploader,
        stepfunctions: SFNClient,
        state_machine_arn: str,
        dead_letters: DeadLetterQueue,
        redelivery: Redelivery,
        logger: Logger,
        metrics: Metrics,
    ) -> None:
        self._uploader = uploader
        self._redelivery = redelivery
        self._sfn = stepfunctions
        self._state_machine_arn = state_machine_arn
        self._dead_letters = dead_letters
        self._logger = logger
        self._metrics = metrics
        self._processor = BatchProcessor(event_type=EventType.SQS)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = process_partial_response(
            event=event, record_handler=self._record, processor=self._processor, context=context
        )
        return dict(response)

    def _record(self, record: SQSRecord) -> None:
        try:
            for change in parse_message_body(record.body):
                if change.removed or change.is_folder_marker:
                    continue
                self.route(change)
        except ImgixUnavailableError as exc:
            # An outage: back to the queue with a delay, spending no receive. Raises if
            # that fails: the record then stays in SQS for retry.
            delay = self._redelivery.send(
                record.body, exc.retry_after_s, str(exc), record.message_id
            )
            self._logger.info("deferred: imgix unavailable", extra={"delay_s": delay})
            self._metrics.add_metric(name="ImgixUnavailable", unit=MetricUnit.Count, value=1)
        except (PoisonRecord, PermanentUploadError) as exc:
            # Raises if the DLQ cannot take it: the record then stays in SQS for retry.
            self._dead_letters.send(record.body, str(exc), record.message_id)
            if isinstance(exc, SubscriptionHandshake):  # the URL is never logged nor fetched
                self._logger.warning(
                    "SNS subscription needs a person",
                    extra={"topic": exc.topic_arn, "type": exc.kind},
                )
                self._metrics.add_metric(
                    name="SnsSubscriptionHandshakes", unit=MetricUnit.Count, value=1
                )
            self._logger.warning("sent to DLQ", extra={"reason": str(exc)})
            self._metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=1)

    def route(self, change: Any) -> str:
        job = self._uploader.job_for(change)
        superseded = self._uploader.superseded_by(job)
        if superseded:
            # Events arrive in any order and more than once: the newest version wins.
            self._logger.info("ingest event skipped", extra={"key": job.key, "reason": superseded})
            self._metrics.add_metric(name="IngestSkipped", unit=MetricUnit.Count, value=1)
            return "skipped"
        if not self._uploader.claim(job):
            # The newer version was uploaded (and may be gone, making this one current
            # again in the ingest bucket): this one is done with, never uploaded.
            disposition = self._uploader.superseded(job, {})["disposition"]
            self._logger.info(
                "ingest event skipped",
                extra={
                    "key": job.key,
                    "reason": "a newer version was ingested",
                    "then": disposition,
                },
            )
            self._metrics.add_metric(name="IngestSkipped", unit=MetricUnit.Count, value=1)
            return "superseded"
        if self._uploader.is_direct(job):
            self._uploader.direct_upload(job)
            self._logger.info("direct upload", extra={"key": job.key, "bytes": job.size})
            self._metrics.add_metric(name="DirectUploads", unit=MetricUnit.Count, value=1)
            return "direct"
        name = job.execution_name(change.sequencer)
        try:
            self._sfn.start_execution(
                stateMachineArn=self._state_machine_arn,
                name=name,
                input=json.dumps(self._uploader.execution_input(job)),
            )
        except self._sfn.exceptions.ExecutionAlreadyExists:
            self._logger.info("upload already started", extra={"key": job.key, "execution": name})
            return "duplicate"
        except Exception as exc:
            raise TransientUploadError(f"could not start the upload execution: {exc}") from exc
        self._logger.info("upload session started", extra={"key": job.key, "execution": name})
        self._metrics.add_metric(name="UploadSessionsStarted", unit=MetricUnit.Count, value=1)
        return "session"
