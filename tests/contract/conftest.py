"""Contract tests: the project's own client, and raw HTTP where the client never goes,
against the emulator, asserting what imgix's documents say (each test names its page)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from localdev.imgix_emulator import ImgixEmulator
from tests.harness.raw_http import CONTRACT_BUCKET as BUCKET


@pytest.fixture
def origin(emulator: ImgixEmulator) -> Any:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def source_id(emulator: ImgixEmulator, origin: Any) -> str:
    return emulator.create_source("contract", BUCKET, subdomains=["contract-demo"])
