"""Assets (docs.imgix.com/apis/management/assets) and Adding Assets
(https://docs.imgix.com/getting-started/setup/asset-manager/how-assets-are-added)."""

from __future__ import annotations

from typing import Any

import pytest

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError, ImgixNotFound
from localdev.imgix_emulator import (
    ASSET_BROWSE,
    ASSET_EDIT,
    PUBLISHED_LIMITS,
    PURGE,
    SOURCES,
    ImgixEmulator,
)
from tests.harness.raw_http import CONTRACT_BUCKET as BUCKET
from tests.harness.raw_http import raw
from tests.harness.world import API_KEY

# Attributes an asset document may carry: the documented ones only, never bookkeeping.
DOCUMENTED = {
    "categories",
    "content_type",
    "custom_fields",
    "date_created",
    "date_modified",
    "description",
    "file_size",
    "media_kind",
    "name",
    "origin_path",
    "source_id",
    "tags",
    "uploaded_by_api",
}


def put(origin: Any, key: str, body: bytes = b"bytes", content_type: str = "image/png") -> None:
    origin.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)


def test_get_asset_uses_the_documented_route(
    client: ImgixClient, emulator: ImgixEmulator, origin: Any, source_id: str
):
    put(origin, "dir/a b.png")
    client.add_asset(source_id, "dir/a b.png")
    asset = client.get_asset(source_id, "dir/a b.png")
    assert emulator.calls_to("get_asset")[-1].raw_path.endswith(
        f"/api/v1/sources/{source_id}/assets/dir/a%20b.png"
    )
    attributes = asset["attributes"]
    assert set(attributes) <= DOCUMENTED and "etag" not in attributes
    assert attributes["origin_path"] == "/dir/a b.png"
    assert attributes["content_type"] == "image/png" and attributes["media_kind"] == "IMAGE"
    assert attributes["file_size"] == 5 and attributes["source_id"] == source_id
    assert attributes["uploaded_by_api"] is False


def test_the_old_undocumented_get_route_is_not_served(emulator: ImgixEmulator, source_id: str):
    assert raw(emulator, "GET", f"/api/v1/assets/{source_id}/a.png").status_code == 404


def test_list_assets_pages(emulator: ImgixEmulator, origin: Any, source_id: str):
    for name in ("a.png", "b.png", "c.png"):
        put(origin, name)
        emulator.create_asset(source_id, name, "e")
    first = raw(emulator, "GET", f"/api/v1/sources/{source_id}/assets?page[size]=2")
    second = raw(emulator, "GET", f"/api/v1/sources/{source_id}/assets?page[size]=2&page[number]=1")
    assert [a["attributes"]["origin_path"] for a in first.json()["data"]] == ["/a.png", "/b.png"]
    assert [a["attributes"]["origin_path"] for a in second.json()["data"]] == ["/c.png"]


def test_list_assets_pages_by_cursor_as_imgix_hygraph_reads_it(
    emulator: ImgixEmulator, origin: Any, source_id: str
):
    """page[cursor] and page[limit], answered with meta.cursor {current, hasMore, next,
    totalRecords} (totalRecords a string, as imgix-hygraph's useImgixAssets reads it)."""
    for name in ("a.png", "b.png", "c.png"):
        put(origin, name)
        emulator.create_asset(source_id, name, "e")
    base = f"/api/v1/sources/{source_id}/assets"
    first = raw(emulator, "GET", f"{base}?page[cursor]=0&page[limit]=2").json()
    assert [a["attributes"]["origin_path"] for a in first["data"]] == ["/a.png", "/b.png"]
    assert first["meta"]["cursor"] == {
        "current": "0", "hasMore": True, "next": "2", "totalRecords": "3"
    }  # fmt: skip
    last = raw(emulator, "GET", f"{base}?page[cursor]=2&page[limit]=2").json()
    assert [a["attributes"]["origin_path"] for a in last["data"]] == ["/c.png"]
    assert last["meta"]["cursor"]["hasMore"] is False and last["meta"]["cursor"]["next"] is None


def test_a_page_never_holds_more_than_100_assets_whatever_is_asked(
    emulator: ImgixEmulator, source_id: str
):
    """Undocumented maximum, modelled as 100: a client must follow hasMore, not count."""
    for i in range(101):
        emulator.asset_api.seed(source_id, f"many/{i:03d}.png", "e")
    page = raw(emulator, "GET", f"/api/v1/sources/{source_id}/assets?page[limit]=500").json()
    assert len(page["data"]) == 100 and page["meta"]["cursor"]["hasMore"] is True


def test_the_client_lists_every_asset_through_every_page(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str
):
    for i in range(5):
        emulator.asset_api.seed(source_id, f"p/{i} é+.png", "e")
    pages = list(client.asset_pages(source_id, page_size=2))
    assert [len(items) for items, _ in pages] == [2, 2, 1]
    assert [cursor for _, cursor in pages] == ["2", "4", None]
    paths = [a["attributes"]["origin_path"] for items, _ in pages for a in items]
    assert paths == [f"/p/{i} é+.png" for i in range(5)]
    assert all("page%5Bcursor%5D=" in c.raw_path for c in emulator.calls_to("list_assets"))


def test_add_now_answers_404_for_a_file_the_origin_lacks(client: ImgixClient, source_id: str):
    """ "For an asset to be added successfully, the asset must exist at the specified asset
    path." One of the two answers the docs allow (add "queue[s]" the path)."""
    with pytest.raises(ImgixNotFound):
        client.add_asset(source_id, "missing.png")


def test_add_later_is_a_queue(
    client: ImgixClient, emulator: ImgixEmulator, origin: Any, source_id: str
):
    """The other answer: the add is accepted at once, the asset appears later, and a path
    the origin lacks never appears. The client must not depend on a 404."""
    emulator.asset_api.add_timing = "later"
    put(origin, "there.png")
    client.add_asset(source_id, "there.png")
    client.add_asset(source_id, "missing.png")  # no 404: it is only queued
    assert not client.has_asset(source_id, "there.png")
    assert emulator.settle() == 2
    assert client.has_asset(source_id, "there.png")
    assert not client.has_asset(source_id, "missing.png")


def test_refresh_pulls_a_new_asset_and_reprocesses_on_a_new_etag(
    client: ImgixClient, emulator: ImgixEmulator, origin: Any, source_id: str
):
    put(origin, "r.png", b"one")
    client.refresh_asset(source_id, "r.png")  # "never been pulled ... will pull the asset"
    asset = emulator.assets[(source_id, "r.png")]
    client.refresh_asset(source_id, "r.png")
    assert asset.version == 1  # same ETag: refetched, not reprocessed
    put(origin, "r.png", b"two")
    client.refresh_asset(source_id, "r.png")
    assert asset.version == 2 and asset.refreshes == 3


@pytest.mark.parametrize(
    ("granted", "route", "allowed"),
    [
        ({ASSET_BROWSE}, "get_asset", True),
        ({SOURCES}, "get_asset", False),
        ({ASSET_EDIT}, "get_asset", True),  # "Edit ... implicitly includes ... Browse"
        ({ASSET_BROWSE}, "add_asset", False),
        ({ASSET_EDIT}, "add_asset", True),
        ({ASSET_EDIT}, "refresh_asset", False),  # refresh: "Asset Edit, Asset Purge"
        ({ASSET_EDIT, PURGE}, "refresh_asset", True),
    ],
)
def test_asset_permissions(
    emulator: ImgixEmulator, origin: Any, source_id: str, granted, route, allowed
):
    put(origin, "p.png")
    emulator.create_asset(source_id, "p.png", "e")
    emulator.api_keys[API_KEY] = frozenset(granted)
    method, path = {
        "get_asset": ("GET", "assets/p.png"),
        "add_asset": ("POST", "assets/add/p.png"),
        "refresh_asset": ("POST", "assets/refresh/p.png"),
    }[route]
    answer = raw(emulator, method, f"/api/v1/sources/{source_id}/{path}")
    assert (answer.status_code == 200) is allowed, answer.text


def test_update_asset_of_a_missing_path_is_404_and_changes_nothing(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str
):
    with pytest.raises(ImgixNotFound):
        client.update_asset(source_id, "never.png", {})
    assert emulator.assets == {}


def test_get_asset_has_its_own_limit_of_10_per_second(
    emulator: ImgixEmulator, origin: Any, source_id: str
):
    """API Rate Limits: "get asset 10 per second" (not the default 4)."""
    emulator.rate_limits = dict(PUBLISHED_LIMITS)
    client = ImgixClient(API_KEY, emulator.base_url, max_retries=0)
    statuses = []
    for _ in range(11):
        try:
            client.has_asset(source_id, "p.png")
            statuses.append(200)
        except ImgixError as exc:
            statuses.append(exc.status)
    assert statuses[:10] == [200] * 10 and statuses[10] == 429
