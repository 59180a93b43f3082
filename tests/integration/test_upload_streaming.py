"""The Transfer step streams a >= 1 GB object with bounded memory (measured, not timed).

S3 is a moto server in a separate process, so the object is served over real HTTP and its
bytes never sit in this process; the emulator writes the PUT body to disk as it arrives.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from imgix_autoadder.core.config import load_settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.ingest.job import UploadJob
from imgix_autoadder.ingest.uploader import Uploader
from localdev.generated import GeneratedObject, sha256_of_generated
from localdev.imgix_emulator import ImgixEmulator
from localdev.moto_server import moto_server as start_moto_server

SIZE = 1024**3 + 12345  # just over 1 GiB, and not a multiple of any block size
PEAK_LIMIT = 24 * 1024 * 1024


@pytest.fixture
def moto_server() -> Iterator[str]:
    with start_moto_server() as endpoint:
        yield endpoint


@pytest.mark.slow
@pytest.mark.long(22)
def test_transfer_of_a_1gb_object_keeps_memory_bounded(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="ingest")
    s3.upload_fileobj(
        GeneratedObject(SIZE),
        "ingest",
        "videos/big.mp4",
        Config=TransferConfig(multipart_chunksize=64 * 1024 * 1024),
    )
    etag = s3.head_object(Bucket="ingest", Key="videos/big.mp4")["ETag"].strip('"')
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server)
    dynamodb.create_table(
        TableName="upload-sessions",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    with ImgixEmulator(api_key="k", rate_limits=None, store_dir=tmp_path) as emulator:
        source_id = emulator.create_source("videos", "origin")
        settings = load_settings(
            {
                "IMGIX_API_KEY_SECRET": "unused",
                "IMGIX_SOURCE_IDS": source_id,
                "UPLOAD_URL_HOST_PATTERN": r"^127\.0\.0\.1$",
                "UPLOAD_URL_ALLOW_HTTP": "true",
                "UPLOAD_SESSIONS_TABLE": "upload-sessions",
            }
        )
        client = ImgixClient("k", emulator.base_url)
        uploader = Uploader(client, s3, settings, session_store=dynamodb)
        job = UploadJob("ingest", "videos/big.mp4", "", etag, SIZE, source_id, "videos/big.mp4")
        session = uploader.create(job)

        tracemalloc.start()
        result = uploader.transfer(job, session)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        stored = emulator.sessions[session["id"]]
        print(
            f"\nstreamed {result['bytes'] / 2**20:.0f} MiB in {result['seconds']:.1f}s, "
            f"peak traced memory {peak / 2**20:.1f} MiB"
        )
        assert result["bytes"] == SIZE == stored.size
        assert stored.sha256 == sha256_of_generated(SIZE)
        assert peak < PEAK_LIMIT, f"peak {peak} bytes: the object was buffered"
        assert os.path.getsize(str(stored.file)) == SIZE
