"""Uploads: direct upload and upload sessions (Assets page; Adding Assets reference), with
the presigned PUT answered as S3 answers one."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from imgix_autoadder.core.limits import DIRECT_UPLOAD_LIMIT_BYTES
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError
from localdev.imgix_emulator import (
    ASSET_EDIT,
    DIRECT_UPLOAD_MAX,
    SESSION_LIFETIME_S,
    SOURCES,
    ImgixEmulator,
)
from tests.harness.raw_http import CONTRACT_BUCKET as BUCKET
from tests.harness.raw_http import raw
from tests.harness.world import API_KEY


def test_30mb_is_read_as_30_000_000_bytes_by_both_sides():
    """ "upload assets under 30MB": the conservative reading."""
    assert DIRECT_UPLOAD_MAX == DIRECT_UPLOAD_LIMIT_BYTES == 30_000_000


def test_a_body_of_30_000_000_bytes_is_refused(emulator: ImgixEmulator, source_id: str):
    path = f"/api/v1/sources/{source_id}/upload/big.bin"
    answer = raw(emulator, "POST", path, data=b"\0" * DIRECT_UPLOAD_MAX)
    assert answer.status_code == 413


def test_upload_replaces_only_with_overwrite(
    client: ImgixClient, emulator: ImgixEmulator, origin: Any, source_id: str
):
    """Assets: "?overwrite=true ... Modifies the Upload endpoint to overwrite an asset
    matching the path at the Source"."""
    origin.put_object(Bucket=BUCKET, Key="u.png", Body=b"old")
    plain = raw(emulator, "POST", f"/api/v1/sources/{source_id}/upload/u.png", data=b"new")
    assert plain.status_code == 409
    client.upload(source_id, "u.png", b"new", "image/png")  # the client sends overwrite=true
    assert origin.get_object(Bucket=BUCKET, Key="u.png")["Body"].read() == b"new"
    assert emulator.calls_to("upload")[-1].raw_path.endswith("?overwrite=true")
    attributes = client.get_asset(source_id, "u.png")["attributes"]
    assert attributes["uploaded_by_api"] is True and attributes["content_type"] == "image/png"


def test_overwrite_needs_the_purge_permission(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str
):
    """Assets: "?overwrite=true" needs "Asset Edit, Asset Purge"."""
    emulator.api_keys[API_KEY] = frozenset({SOURCES, ASSET_EDIT})
    with pytest.raises(ImgixError) as caught:
        client.upload(source_id, "new.png", b"x", "image/png")
    assert caught.value.status == 403 and "purge" in caught.value.detail


def test_a_session_url_is_signed_with_the_files_content_type(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str
):
    session = client.create_upload_session(source_id, "v.mp4", "video/mp4")
    assert session.status == "PENDING"
    for wrong in ({}, {"Content-Type": "application/octet-stream"}):
        refused = requests.put(session.url, data=b"movie", headers=wrong, timeout=10)
        assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text
    put = requests.put(
        session.url, data=b"movie", headers={"Content-Type": "video/mp4"}, timeout=10
    )
    assert put.status_code == 200
    assert client.close_upload_session(source_id, session.id).status == "CLOSED"
    assert client.get_upload_session(source_id, session.id).status == "COMPLETE"
    attributes = client.get_asset(source_id, "v.mp4")["attributes"]
    assert attributes["content_type"] == "video/mp4" and attributes["media_kind"] == "VIDEO"


def test_a_session_and_its_url_expire_after_8_hours(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str
):
    """ "The session and presigned URL will stay open for 8 hours ... Unclosed sessions will
    close after 8 hours.\""""
    now = [1_700_000_000.0]
    emulator.clock = lambda: now[0]
    session = client.create_upload_session(source_id, "late.mp4", "video/mp4")
    now[0] += SESSION_LIFETIME_S + 1
    late = requests.put(session.url, data=b"x", headers={"Content-Type": "video/mp4"}, timeout=10)
    assert late.status_code == 403 and "AccessDenied" in late.text
    assert client.get_upload_session(source_id, session.id).status == "CLOSED"


def test_uploads_to_a_source_without_allows_upload_are_refused(
    client: ImgixClient, emulator: ImgixEmulator
):
    read_only = emulator.create_source("ro", "b", subdomains=["ro-demo"], allows_upload=False)
    with pytest.raises(ImgixError) as caught:
        client.create_upload_session(read_only, "v.mp4", "video/mp4")
    assert caught.value.status == 403
