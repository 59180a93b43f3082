"""Contract tests: the project's own client, and raw HTTP where the client never goes,
against the emulator, asserting what imgix's documents say (each test names its page)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import requests

from localdev.imgix_emulator import ImgixEmulator
from tests.conftest import API_KEY

BUCKET = "contract-origin"


@pytest.fixture
def origin(emulator: ImgixEmulator) -> Any:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def source_id(emulator: ImgixEmulator, origin: Any) -> str:
    return emulator.create_source("contract", BUCKET, subdomains=["contract-demo"])


def raw(
    emulator: ImgixEmulator, method: str, path: str, key: str = API_KEY, **kw: Any
) -> requests.Response:
    """A request the project's client would not make, sent as imgix's docs show them."""
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return requests.request(method, emulator.base_url + path, headers=headers, timeout=10, **kw)


def jsonapi(data: Any) -> dict[str, Any]:
    return {"data": data, "jsonapi": {"version": "1.0"}}
