"""Composition root: a function's long-lived objects, built from Settings once per cold start."""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters

from imgix_autoadder.config import Settings
from imgix_autoadder.imgix_client import ImgixClient, Pacers
from imgix_autoadder.observability import redactor

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


def aws_client(service: str) -> Any:
    # AWS_ENDPOINT_URL (moto locally) is honoured by boto3 itself.
    return boto3.client(service)  # type: ignore[call-overload]


def sqs_client() -> Any:
    return aws_client("sqs")
