"""Composition root: each function's long-lived objects, built from Settings.

Handlers validate Settings at import and call a builder here on their first invocation
(once per execution environment). This module is what pulls in boto3, requests and the
heavier Powertools utilities (~500 ms here), so handler modules import it lazily.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from imgix_autoadder.core import invocation
from imgix_autoadder.core.api_key import ApiKeySource
from imgix_autoadder.core.settings import Settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.transport import KeySource
from imgix_autoadder.rate.breaker import Breaker
from imgix_autoadder.rate.pacing import Pacers

# The builders import their parts themselves, so that the uploader never loads
# Idempotency and the indexer never loads the uploader.
if TYPE_CHECKING:
    from imgix_autoadder.indexing.batch import IndexerBatchHandler
    from imgix_autoadder.indexing.fields import FieldWriter
    from imgix_autoadder.indexing.indexer import Indexer
    from imgix_autoadder.ingest.router import IngestRouter
    from imgix_autoadder.ingest.uploader import Uploader
    from imgix_autoadder.sources.source_map import SourceMap


def aws_session(function: str) -> boto3.Session:
    """The AWS credentials of `function` (its logical id in template.yaml).

    In Lambda: the execution role's, from the environment. Tests replace this to run each
    function with exactly the permissions template.yaml grants it (tests/harness/template_iam.py).
    """
    return boto3.Session()


def aws_client(session: boto3.Session, service: str, connections: int = 10) -> Any:
    """`connections`: as many as threads share the client (botocore keeps 10 by default).

    Timeouts and retries are bounded so that an AWS call never eats a handler's reserve.
    """
    # AWS_ENDPOINT_URL (moto locally) is honoured by boto3 itself.
    config = Config(
        max_pool_connections=max(connections, 10),
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return session.client(service, config=config)  # type: ignore[call-overload]


def api_key_source(settings: Settings, session: boto3.Session) -> ApiKeySource:
    secrets = parameters.SecretsProvider(boto3_client=aws_client(session, "secretsmanager"))
    return ApiKeySource(secrets, settings.api_key_secret)


def build_pacers(settings: Settings, session: boto3.Session | None = None) -> Pacers:
    """In-process pacers, or the shared budget when RATE_BUDGET_TABLE names its table."""
    if not settings.rate_budget_table or session is None:
        return Pacers.per_second(
            settings.default_per_second,
            settings.refresh_per_minute,
            settings.upload_per_second,
            settings.purge_per_second,
            settings.get_asset_per_second,
        )
    from imgix_autoadder.rate.budget import SharedRateLimiter

    dynamodb = aws_client(session, "dynamodb", max(settings.max_parallel_requests, 2) * 2)

    def shared(limit_class: str, per_second: float) -> SharedRateLimiter:
        return SharedRateLimiter(
            dynamodb,
            settings.rate_budget_table,
            settings.imgix_account,
            limit_class,
            per_second,
            idle_only=settings.rate_budget_idle_only,
        )

    pacers = Pacers(
        shared("default", settings.default_per_second),
        shared("refresh", settings.refresh_per_minute / 60.0),
        shared("upload", settings.upload_per_second),
        shared("purge", settings.purge_per_second),
        shared("get_asset", settings.get_asset_per_second),
    )
    invocation.at_end(pacers.idle)  # the environment may be frozen next: lanes go back
    return pacers


def build_breaker(settings: Settings, session: boto3.Session | None = None) -> Breaker:
    """The stack's breaker: shared through the budget table when there is one, else this
    process's own."""
    if not settings.rate_budget_table or session is None:
        return Breaker()
    from imgix_autoadder.rate.breaker_table import DynamoBreakerStore

    dynamodb = aws_client(session, "dynamodb")
    return Breaker(DynamoBreakerStore(dynamodb, settings.rate_budget_table, settings.imgix_account))


def build_client(
    settings: Settings,
    keys: KeySource | str,
    pacers: Pacers | None = None,
    breaker: Breaker | None = None,
) -> ImgixClient:
    return ImgixClient(
        api_key=keys,
        base_url=settings.api_base_url,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        max_retries=settings.max_retries,
        backoff_factor_s=settings.backoff_factor_s,
        retry_after_max_s=settings.retry_after_max_s,
        pool_size=max(settings.max_parallel_requests, 2),
        pacers=pacers or build_pacers(settings),
        breaker=breaker or Breaker(),
        max_pacing_wait_s=settings.max_pacing_wait_s,
    )


def patient_client(settings: Settings, session: boto3.Session) -> ImgixClient:
    """A client for work that cannot be handed back (an operator's command, the scheduled
    audit): where the budget has no slot for it yet, it waits (rate/pacing.Patient)."""
    from imgix_autoadder.rate.pacing import Patient

    pacers = Patient.all_of(build_pacers(settings, session))
    keys = api_key_source(settings, session)
    return build_client(settings, keys, pacers, build_breaker(settings, session))


def function_client(settings: Settings, function: str) -> tuple[boto3.Session, ImgixClient]:
    session = aws_session(function)
    pacers = build_pacers(settings, session)
    breaker = build_breaker(settings, session)
    return session, build_client(settings, api_key_source(settings, session), pacers, breaker)


def load_sources(client: ImgixClient, settings: Settings, logger: Logger) -> SourceMap:
    """The configured Sources, read once from the Sources API."""
    from imgix_autoadder.sources.source_map import SourceMap

    sources = SourceMap.load(client, settings.source_ids)
    described = [{"id": s.id, "bucket": s.bucket, "prefix": s.prefix} for s in sources.sources]
    logger.info("sources loaded", extra={"sources": described})
    return sources


def field_writer(settings: Settings, client: ImgixClient) -> FieldWriter | None:
    """S3 user metadata and tags as custom fields (METADATA_FIELDS, TAG_FIELDS), the
    deleted mark (MARK_DELETED_ASSETS): the writer when any is on."""
    from imgix_autoadder.indexing.fields import FieldWriter

    if not (settings.metadata_fields or settings.tag_fields or settings.mark_deleted_assets):
        return None
    return FieldWriter(
        client,
        settings.metadata_fields,
        settings.custom_field_prefix,
        settings.mark_deleted_assets,
        settings.tag_fields,
    )


def build_indexer_batch(
    settings: Settings, logger: Logger, metrics: Metrics
) -> IndexerBatchHandler:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from imgix_autoadder.core.backlog import Backlog
    from imgix_autoadder.core.dead_letters import DeadLetterQueue, Redelivery
    from imgix_autoadder.indexing.batch import IndexerBatchHandler
    from imgix_autoadder.indexing.indexer import Indexer
    from imgix_autoadder.indexing.state import StateStore
    from imgix_autoadder.s3.origin import S3Origin

    session, client = function_client(settings, "IndexerFunction")
    workers = Indexer.workers_for(settings.max_parallel_requests)
    dynamodb = aws_client(session, "dynamodb", workers)  # for the state store and Idempotency
    s3 = aws_client(session, "s3", workers)

    def make_indexer() -> Indexer:
        return Indexer(
            client,
            load_sources(client, settings, logger),
            StateStore(dynamodb, settings.state_table),
            logger,
            S3Origin(s3, read_tags=bool(settings.tag_fields)),
            max_parallel=settings.max_parallel_requests,
            idempotency=DynamoDBPersistenceLayer(
                table_name=settings.idempotency_table, boto3_client=dynamodb
            ),
            fields=field_writer(settings, client),
        )

    @cache
    def sqs() -> Any:
        return aws_client(session, "sqs")

    return IndexerBatchHandler(
        make_indexer,
        DeadLetterQueue(sqs, settings.dead_letter_queue_url),
        Redelivery(sqs, settings.events_queue_url),
        logger,
        metrics,
        reserve_s=settings.handler_reserve_s,
        backlog=Backlog(sqs, settings.events_queue_url),
    )


def build_backfill_indexer(settings: Settings, logger: Logger) -> Indexer:
    from imgix_autoadder.indexing.indexer import Indexer
    from imgix_autoadder.indexing.state import StateStore
    from imgix_autoadder.s3.origin import S3Origin

    session, client = function_client(settings, "BackfillFunction")
    return Indexer(
        client,
        load_sources(client, settings, logger),
        StateStore(aws_client(session, "dynamodb"), settings.state_table),
        logger,
        S3Origin(aws_client(session, "s3"), read_tags=bool(settings.tag_fields)),
        max_parallel=1,  # one listed object per invocation
        fields=field_writer(settings, client),
    )


def build_uploader(settings: Settings, function: str = "UploaderFunction") -> Uploader:
    from imgix_autoadder.ingest.ledger import IngestLedger
    from imgix_autoadder.ingest.uploader import Uploader

    session, client = function_client(settings, function)
    dynamodb = aws_client(session, "dynamodb")
    return Uploader(
        client,
        aws_client(session, "s3"),
        settings,
        session_store=dynamodb if settings.upload_sessions_table else None,
        ledger=IngestLedger(dynamodb, settings.state_table) if settings.state_table else None,
    )


def build_ingest_router(settings: Settings, logger: Logger, metrics: Metrics) -> IngestRouter:
    from imgix_autoadder.core.dead_letters import DeadLetterQueue, Redelivery
    from imgix_autoadder.ingest.router import IngestRouter

    session = aws_session("UploadRouterFunction")

    @cache
    def sqs() -> Any:
        return aws_client(session, "sqs")

    return IngestRouter(
        build_uploader(settings, "UploadRouterFunction"),
        aws_client(session, "stepfunctions"),
        settings.upload_state_machine_arn,
        DeadLetterQueue(sqs, settings.dead_letter_queue_url),
        Redelivery(sqs, settings.ingest_queue_url),
        logger,
        metrics,
    )
