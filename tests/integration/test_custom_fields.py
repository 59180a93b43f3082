"""S3 user metadata in the Asset Manager (METADATA_FIELDS): written as custom fields the
documented way (read the asset, PATCH custom_fields whole), fields people set survive, a
change of user metadata alone is a patch and never a refresh, nothing is written twice,
and an add imgix only queued gets its fields once imgix holds the asset."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.events import queued
from tests.harness.world import BUCKET, FakeContext, Stack, load_function
from tests.integration.test_event_shapes import copied_in_place, created, deliver, put, shaped

KEY = "images/catalogue/shoe 1+1.jpg"
PATH = KEY.removeprefix("images/")


@pytest.fixture
def indexer(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("METADATA_FIELDS", "sku,color")
    monkeypatch.setenv("CUSTOM_FIELD_PREFIX", "s3_")
    return load_function("indexer")


def fields(stack: Stack) -> dict[str, Any]:
    asset = stack.emulator.assets[(stack.source_id, PATH)]
    return dict(asset.editable.get("custom_fields", {}))


def routes(stack: Stack) -> list[str]:
    return [c.route for c in stack.emulator.calls if c.route != "get_source"]


def copy_in_place(stack: Stack, metadata: dict[str, str]) -> dict[str, Any]:
    return copied_in_place(stack, KEY, ContentType="image/jpeg", Metadata=metadata)


def test_fields_follow_user_metadata_and_people_s_fields_survive(stack: Stack, invoke: Any):
    meta = {"sku": "A1", "internal": "not mapped"}
    v1 = put(stack, KEY, b"shoe", ContentType="image/jpeg", Metadata=meta)
    first = created(stack, KEY, v1)
    deliver(invoke, first)
    assert routes(stack) == ["add_asset", "get_asset", "patch_asset"]
    assert fields(stack) == {"s3_sku": "A1"}

    # Someone tags the asset in the dashboard; then the upload pipeline changes the SKU
    # and adds a colour, without touching the bytes.
    stack.emulator.assets[(stack.source_id, PATH)].editable["custom_fields"]["owner"] = "ann"
    stack.emulator.reset_calls()
    deliver(invoke, copy_in_place(stack, {"sku": "B2", "color": "red"}))
    assert routes(stack) == ["get_asset", "patch_asset"]  # a patch, never a refresh
    assert fields(stack) == {"owner": "ann", "s3_sku": "B2", "s3_color": "red"}

    stack.emulator.reset_calls()
    deliver(invoke, first)  # an old event again: nothing to tell
    assert routes(stack) == []

    deliver(invoke, copy_in_place(stack, {}))  # the metadata removed: its fields go too
    assert fields(stack) == {"owner": "ann"}


def test_an_add_imgix_only_queued_gets_its_fields_when_the_asset_exists(stack: Stack, invoke: Any):
    stack.emulator.asset_api.add_timing = "later"
    v1 = put(stack, KEY, b"shoe", ContentType="image/jpeg", Metadata={"sku": "A1"})
    event = created(stack, KEY, v1)

    deliver(invoke, event)
    assert routes(stack) == ["add_asset", "get_asset"]  # not there yet: 404
    [back] = queued()  # deferred, not failed: no receive spent
    assert back.delayed_until > 0
    stack.emulator.settle()  # imgix's queue runs
    stack.emulator.reset_calls()

    deliver(invoke, event)  # the deferred delivery
    assert routes(stack) == ["get_asset", "patch_asset"]  # no second add
    assert fields(stack) == {"s3_sku": "A1"}
    stack.emulator.reset_calls()
    deliver(invoke, event)
    assert routes(stack) == []


def test_a_deleted_key_is_marked_and_created_again_loses_the_mark(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    """imgix documents no way to remove an asset: with MARK_DELETED_ASSETS the purged key's
    asset says it is gone (its last fields kept, searchable), until the key comes back."""
    monkeypatch.setenv("METADATA_FIELDS", "sku")
    monkeypatch.setenv("CUSTOM_FIELD_PREFIX", "s3_")
    monkeypatch.setenv("MARK_DELETED_ASSETS", "true")
    indexer = load_function("indexer")

    def invoke(event: dict[str, Any]) -> Any:
        return indexer.lambda_handler(event, FakeContext())

    v1 = put(stack, KEY, b"shoe", ContentType="image/jpeg", Metadata={"sku": "A1"})
    deliver(invoke, created(stack, KEY, v1))
    stack.emulator.assets[(stack.source_id, PATH)].editable["custom_fields"]["owner"] = "ann"
    marker = stack.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    deleted = shaped("s3-delete-marker-created.json", KEY, marker)
    stack.emulator.reset_calls()

    deliver(invoke, deleted)
    assert routes(stack)[-2:] == ["get_asset", "patch_asset"] and "purge" in routes(stack)
    at = deleted["Records"][0]["eventTime"]
    assert fields(stack) == {
        "owner": "ann", "s3_sku": "A1", "s3_origin_status": "deleted", "s3_origin_deleted_at": at
    }  # fmt: skip
    stack.emulator.reset_calls()
    deliver(invoke, deleted)  # again: nothing
    assert routes(stack) == []

    v2 = put(stack, KEY, b"shoe again", ContentType="image/jpeg", Metadata={"sku": "B2"})
    deliver(invoke, created(stack, KEY, v2))
    assert fields(stack) == {"owner": "ann", "s3_sku": "B2"}


def test_the_backfill_writes_the_fields_of_existing_objects(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("METADATA_FIELDS", "sku")
    monkeypatch.setenv("CUSTOM_FIELD_PREFIX", "s3_")
    backfill = load_function("backfill")
    etag = put(stack, KEY, b"shoe", ContentType="image/jpeg", Metadata={"sku": "OLD-1"})["etag"]
    listed = {"Key": KEY, "ETag": f'"{etag}"', "Size": 4, "LastModified": "2026-12-01"}

    backfill.lambda_handler({"bucket": BUCKET, "object": listed}, FakeContext())

    assert routes(stack) == ["add_asset", "get_asset", "patch_asset"]
    assert fields(stack) == {"s3_sku": "OLD-1"}


def test_a_key_created_again_without_its_metadata_loses_the_old_fields(stack: Stack, invoke: Any):
    """imgix keeps a purged asset listed, with the fields it had: the key's next creation
    replaces them, even with none."""
    v1 = put(stack, KEY, b"shoe", ContentType="image/jpeg", Metadata={"sku": "A1"})
    deliver(invoke, created(stack, KEY, v1))
    marker = stack.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
    deliver(invoke, shaped("s3-delete-marker-created.json", KEY, marker))
    assert fields(stack) == {"s3_sku": "A1"}  # purged, still listed

    v2 = put(stack, KEY, b"another shoe", ContentType="image/jpeg")
    deliver(invoke, created(stack, KEY, v2))
    assert fields(stack) == {}
