"""Upload router Lambda: new ingest-bucket objects -> direct upload or an upload-session run."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imgix_autoadder.config import load_settings
from imgix_autoadder.dead_letters import DeadLetterQueue
from imgix_autoadder.ingest import IngestRouter
from imgix_autoadder.observability import make_logger, make_metrics
from imgix_autoadder.runtime import aws_client, build_client, fetch_api_key, sqs_client
from imgix_autoadder.uploader import Uploader

logger = make_logger()
metrics = make_metrics()
settings = load_settings(required=("UPLOAD_STATE_MACHINE_ARN", "DEAD_LETTER_QUEUE_URL"))
router = IngestRouter(
    Uploader(build_client(settings, fetch_api_key(settings)), aws_client("s3"), settings),
    aws_client("stepfunctions"),
    settings.upload_state_machine_arn,
    DeadLetterQueue(sqs_client, settings.dead_letter_queue_url),
    logger,
    metrics,
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router.handle(event, context)
