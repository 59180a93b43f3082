"""Indexer Lambda: S3 notifications (via SQS) -> imgix add / refresh / purge.

Everything is built at cold start: a bad configuration fails the first invocation with
a message naming every problem, and the imgix Sources are read once, not per batch.
"""

from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from imgix_autoadder.config import load_settings
from imgix_autoadder.dead_letters import DeadLetterQueue
from imgix_autoadder.indexer import Indexer
from imgix_autoadder.observability import make_logger, make_metrics
from imgix_autoadder.origin import S3Origin
from imgix_autoadder.runtime import aws_client, build_client, fetch_api_key, sqs_client
from imgix_autoadder.sources import SourceMap
from imgix_autoadder.sqs_batch import IndexerBatchHandler
from imgix_autoadder.state import StateStore

logger = make_logger()
metrics = make_metrics()
settings = load_settings(required=("STATE_TABLE", "IDEMPOTENCY_TABLE", "DEAD_LETTER_QUEUE_URL"))
client = build_client(settings, fetch_api_key(settings))
sources = SourceMap.load(client, settings.source_ids)
logger.info(
    "sources loaded",
    extra={
        "sources": [{"id": s.id, "bucket": s.bucket, "prefix": s.prefix} for s in sources.sources]
    },
)
dynamodb = aws_client("dynamodb")  # one client for the state store and Idempotency
indexer = Indexer(
    client,
    sources,
    StateStore(dynamodb, settings.state_table),
    logger,
    S3Origin(aws_client("s3")),
    max_parallel=settings.max_parallel_requests,
    idempotency=DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=dynamodb
    ),
)
batch = IndexerBatchHandler(
    indexer, DeadLetterQueue(sqs_client, settings.dead_letter_queue_url), logger, metrics
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return batch.handle(event, context)
