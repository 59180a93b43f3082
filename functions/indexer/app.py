"""Indexer Lambda: S3 notifications (via SQS) -> imgix add / refresh / purge.

Settings are validated at import: a bad configuration fails the cold start with a
message naming every problem. The rest (boto3, the API key, the imgix Sources) is built
on the first invocation and kept for the life of the execution environment.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from imgix_autoadder.core.call_tally import imgix_calls_counted
from imgix_autoadder.core.config import load_settings
from imgix_autoadder.core.observability import make_logger, make_metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgix_autoadder.indexing.batch import IndexerBatchHandler

logger = make_logger()
metrics = make_metrics()
settings = load_settings(function="indexer")


@cache
def batch_handler() -> IndexerBatchHandler:
    from imgix_autoadder.wiring import build_indexer_batch  # boto3 and friends: first use

    return build_indexer_batch(settings, logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@imgix_calls_counted(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return batch_handler().handle(event, context)
