"""The stand-in stays strict: moto patched for speed (localdev/moto_speedups.py) answers
exactly as moto does unpatched."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto.s3 import urls
from moto.s3.models import s3_backends
from moto.s3.utils import _VersionedKeyStore

KEYS = ("img/a.jpg", "img/a.jpg.bak", "img/ab/c.jpg", "img/b.jpg", "other/a.jpg", "img/z")


def versioned_bucket() -> Any:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="speedups-check")
    s3.put_bucket_versioning(Bucket="speedups-check", VersioningConfiguration={"Status": "Enabled"})
    for round_ in range(3):
        for key in KEYS:
            s3.put_object(Bucket="speedups-check", Key=key, Body=f"{key} {round_}".encode())
    s3.delete_object(Bucket="speedups-check", Key="img/b.jpg")  # a delete marker on top
    return s3


def listings(s3: Any) -> list[dict[str, Any]]:
    """First pages (the patched case) and every later page (run by moto unchanged)."""
    answers = []
    for asked in (
        {"Prefix": "img/a.jpg"},
        {"Prefix": "img/", "Delimiter": "/"},
        {"Prefix": "img/"},
        {"Prefix": ""},
        {"Prefix": "nothing/"},
    ):
        page = s3.list_object_versions(Bucket="speedups-check", MaxKeys=4, **asked)
        while True:
            page.pop("ResponseMetadata")
            answers.append(page)
            if not page.get("IsTruncated"):
                break
            page = s3.list_object_versions(
                Bucket="speedups-check",
                MaxKeys=4,
                KeyMarker=page["NextKeyMarker"],
                VersionIdMarker=page["NextVersionIdMarker"],
                **asked,
            )
    return answers


def test_a_version_listing_answers_as_unpatched_moto(aws: None, monkeypatch: pytest.MonkeyPatch):
    s3 = versioned_bucket()
    patched = listings(s3)
    first = patched[0]["Versions"]  # a prefix, not a key: the .bak is under it too
    assert {v["Key"] for v in first} == {"img/a.jpg", "img/a.jpg.bak"} and patched[0]["IsTruncated"]
    with monkeypatch.context() as unpatched:
        # moto's own walk of every key: the prefix the patch hands it is ignored.
        unpatched.setattr(_VersionedKeyStore, "iterlists", _VersionedKeyStore._iterlists)
        unpatched.setattr(_VersionedKeyStore, "lists", _VersionedKeyStore._iterlists)
        assert listings(s3) == patched


def test_the_s3_url_module_is_loaded_again_when_its_setting_changes(
    aws: None, monkeypatch: pytest.MonkeyPatch
):
    backend = s3_backends["123456789012"]["aws"]
    assert backend._url_module is backend._url_module  # kept while the setting holds
    monkeypatch.setenv("MOTO_S3_CUSTOM_ENDPOINTS", "https://s3.example.test")
    assert "https://s3.example.test" in backend._url_module.url_bases
    monkeypatch.delenv("MOTO_S3_CUSTOM_ENDPOINTS")
    assert "https://s3.example.test" not in backend._url_module.url_bases
    assert urls.url_bases == backend._url_module.url_bases
