"""Composition root: each function's long-lived objects, built from Settings.

Handlers validate Settings at import and call a builder here on their first invocation
(once per execution environment). This module is what pulls in boto3, requests and the
heavier Powertools utilities (~500 ms here), so handler modules import it lazily.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from imgix_autoadder.config import Settings
from imgix_autoadder.imgix_client import ImgixClient, Pacers
from imgix_autoadder.observability import redactor

# The builders import their parts themselves, so that the uploader never loads
# Idempotency and the indexer never loads the uploader.
if TYPE_CHECKING:
    from imgix_autoadder.indexer import Indexer
    from imgix_autoadder.ingest import IngestRouter
    from imgix_autoadder.sources import SourceMap
    from imgix_autoadder.sqs_batch import IndexerBatchHandler
    from imgix_autoadder.uploader import Uploader

SECRET_CACHE_S = 300


def fetch_api_key(settings: Settings) -> str:
    """The imgix API key from Secrets Manager (cached by Powertools Parameters).

    The secret may be the bare key or JSON with an "api_key" field.
    """
    raw = parameters.get_secret(settings.api_key_secret, max_age=SECRET_CACHE_S)
    key = raw
    if raw.lstrip().startswith("{"):
        key = str(json.loads(raw).get("api_key", ""))
    key = key.strip()
    if not key:
        raise ValueError(f"secret {settings.api_key_secret!r} holds no imgix API key")
    redactor.register(key)
    return key


def build_client(settings: Settings, api_key: str) -> ImgixClient:
    return ImgixClient(
        api_key=api_key,
        base_url=settings.api_base_url,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        max_retries=settings.max_retries,
        backoff_factor_s=settings.backoff_factor_s,
        retry_after_max_s=settings.retry_after_max_s,
        pool_size=max(settings.max_parallel_requests, 2),
        pacers=Pacers.per_second(
            settings.default_per_second,
            settings.refresh_per_minute,
            settings.upload_per_second,
            settings.purge_per_second,
        ),
    )


def aws_client(service: str, connections: int = 10) -> Any:
    """`connections`: as many as threads share the client (botocore keeps 10 by default)."""
    # AWS_ENDPOINT_URL (moto locally) is honoured by boto3 itself.
    config = Config(max_pool_connections=max(connections, 10))
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def sqs_client() -> Any:
    return aws_client("sqs")


def load_sources(client: ImgixClient, settings: Settings, logger: Logger) -> SourceMap:
    """The configured Sources, read once from the Sources API."""
    from imgix_autoadder.sources import SourceMap

    sources = SourceMap.load(client, settings.source_ids)
    described = [{"id": s.id, "bucket": s.bucket, "prefix": s.prefix} for s in sources.sources]
    logger.info("sources loaded", extra={"sources": described})
    return sources


def build_indexer_batch(
    settings: Settings, logger: Logger, metrics: Metrics
) -> IndexerBatchHandler:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from imgix_autoadder.dead_letters import DeadLetterQueue
    from imgix_autoadder.indexer import Indexer
    from imgix_autoadder.origin import S3Origin
    from imgix_autoadder.sqs_batch import IndexerBatchHandler
    from imgix_autoadder.state import StateStore

    client = build_client(settings, fetch_api_key(settings))
    workers = Indexer.workers_for(settings.max_parallel_requests)
    dynamodb = aws_client("dynamodb", workers)  # one client for the state store and Idempotency
    indexer = Indexer(
        client,
        load_sources(client, settings, logger),
        StateStore(dynamodb, settings.state_table),
        logger,
        S3Origin(aws_client("s3", workers)),
        max_parallel=settings.max_parallel_requests,
        idempotency=DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        ),
    )
    dead_letters = DeadLetterQueue(sqs_client, settings.dead_letter_queue_url)
    return IndexerBatchHandler(indexer, dead_letters, logger, metrics)


def build_backfill_indexer(settings: Settings, logger: Logger) -> Indexer:
    from imgix_autoadder.indexer import Indexer
    from imgix_autoadder.origin import S3Origin
    from imgix_autoadder.state import StateStore

    client = build_client(settings, fetch_api_key(settings))
    return Indexer(
        client,
        load_sources(client, settings, logger),
        StateStore(aws_client("dynamodb"), settings.state_table),
        logger,
        S3Origin(aws_client("s3")),
        max_parallel=1,  # one listed object per invocation
    )


def build_uploader(settings: Settings) -> Uploader:
    from imgix_autoadder.uploader import Uploader

    return Uploader(build_client(settings, fetch_api_key(settings)), aws_client("s3"), settings)


def build_ingest_router(settings: Settings, logger: Logger, metrics: Metrics) -> IngestRouter:
    from imgix_autoadder.dead_letters import DeadLetterQueue
    from imgix_autoadder.ingest import IngestRouter

    return IngestRouter(
        build_uploader(settings),
        aws_client("stepfunctions"),
        settings.upload_state_machine_arn,
        DeadLetterQueue(sqs_client, settings.dead_letter_queue_url),
        logger,
        metrics,
    )
