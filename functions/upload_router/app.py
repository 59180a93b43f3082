"""Upload router Lambda: new ingest-bucket objects -> direct upload or an upload-session run.

Settings are validated at import; clients and the API key are built on first use.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from imgix_autoadder.core.call_tally import imgix_calls_counted
from imgix_autoadder.core.config import load_settings
from imgix_autoadder.core.observability import make_logger, make_metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from imgix_autoadder.ingest.router import IngestRouter

logger = make_logger()
metrics = make_metrics()
settings = load_settings(function="upload_router")


@cache
def router() -> IngestRouter:
    from imgix_autoadder.wiring import build_ingest_router  # boto3 and friends: first use

    return build_ingest_router(settings, logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@imgix_calls_counted(metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return router().handle(event, context)
