"""Uploader Lambda: one step of an upload session, called by the Step Functions machine.

Errors are raised as TransientUploadError (the state machine retries with jittered
backoff) or PermanentUploadError (caught, recorded by the RecordFailure step).
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from imgix_autoadder.core.call_tally import imgix_calls_counted
from imgix_autoadder.core.config import load_settings
from imgix_autoadder.core.observability import make_logger, make_metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgix_autoadder.ingest.uploader import Uploader

logger = make_logger()
metrics = make_metrics()
settings = load_settings(function="uploader")


@cache
def upload_steps() -> Uploader:
    from imgix_autoadder.wiring import build_uploader  # boto3 and friends: first use

    return build_uploader(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@imgix_calls_counted(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from imgix_autoadder.ingest.job import UploadJob  # loaded with upload_steps() anyway

    if event.get("source") == "aws.states":
        # EventBridge: an execution timed out or was aborted, so its Catch never ran.
        detail = event["detail"]
        event = {
            "action": "fail",
            "execution": detail.get("name"),
            "job": json.loads(detail["input"])["job"],
            "error": {
                "Error": f"Execution{str(detail.get('status', '')).title().replace('_', '')}",
                "Cause": f"the upload execution ended {detail.get('status')} before it finished",
            },
        }
    action = event["action"]
    job = UploadJob.from_dict(event["job"])
    uploader = upload_steps()
    # The execution name ties every step of one upload together in the logs.
    logger.set_correlation_id(event.get("execution"))
    logger.append_keys(action=action, key=job.key, source_id=job.source_id)
    if action == "create":
        return uploader.create(job)
    if action == "transfer":
        result = uploader.transfer(job, event["session"])
        logger.info("transferred", extra=result)
        metrics.add_metric(name="UploadedBytes", unit=MetricUnit.Bytes, value=result["bytes"])
        metrics.add_metric(name="TransferSeconds", unit=MetricUnit.Seconds, value=result["seconds"])
        return result
    if action == "close":
        return uploader.close(job, event["session"])
    if action == "check":
        return uploader.check(job, event["session"], int(event.get("attempt", 0)))
    if action == "finalize":
        outcome = uploader.finalize(job)
        logger.info("upload complete", extra={**outcome, **event.get("transfer", {})})
        metrics.add_metric(name="Uploaded", unit=MetricUnit.Count, value=1)
        return outcome
    if action == "superseded":
        outcome = uploader.superseded(job, event.get("error") or {})
        logger.info("upload superseded by a newer version", extra=outcome)
        metrics.add_metric(name="UploadSuperseded", unit=MetricUnit.Count, value=1)
        return outcome
    if action == "fail":
        outcome = uploader.fail(job, event.get("error") or {})
        logger.error("upload failed", extra=outcome)
        metrics.add_metric(name="UploadFailed", unit=MetricUnit.Count, value=1)
        return outcome
    raise ValueError(f"unknown action {action!r}")
