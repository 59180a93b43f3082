"""Both sides of an audit, listed page by page: S3 under a Source's prefix, and imgix's
assets of the Source (or, for a bounded run, one get asset per key)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from imgix_autoadder.audit.classify import ListedAsset, OriginObject, skip_reason
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixNotFound
from imgix_autoadder.indexing.key_state import Told
from imgix_autoadder.indexing.state import StateStore
from imgix_autoadder.sources.source_map import Source

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Told a page arrived: how many items it held.
OnPage = Callable[[int], None]


def origin_objects(
    s3: S3Client,
    source: Source,
    on_page: OnPage = lambda n: None,
    start_after: str = "",
    limit: int | None = None,
    content_types: bool = False,
    page_size: int = 1000,
) -> Iterator[OriginObject]:
    """ListObjectsV2 under the Source's prefix, in S3's (key) order; with `content_types`,
    a HeadObject per key for its Content-Type (the listing has none)."""
    prefix = f"{source.prefix}/" if source.prefix else ""
    paging: dict[str, Any] = {"Bucket": source.bucket, "Prefix": prefix}
    if start_after:
        paging["StartAfter"] = start_after
    listed = 0
    pages = s3.get_paginator("list_objects_v2").paginate(
        **paging, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        entries = page.get("Contents", [])
        on_page(len(entries))
        for entry in entries:
            if limit is not None and listed >= limit:
                return
            listed += 1
            key = str(entry["Key"])
            content_type = None
            if content_types and not key.endswith("/"):
                content_type = s3.head_object(Bucket=source.bucket, Key=key).get("ContentType")
            yield OriginObject(
                key=key,
                size=int(entry.get("Size", 0)),
                last_modified=entry["LastModified"].timestamp(),
                etag=str(entry.get("ETag", "")).strip('"'),
                content_type=content_type,
            )


def listed_assets(
    client: ImgixClient, source: Source, on_page: OnPage = lambda n: None, page_size: int = 100
) -> Iterator[ListedAsset]:
    """Every asset imgix lists for the Source, through every page."""
    for items, _ in client.asset_pages(source.id, page_size=page_size):
        on_page(len(items))
        for item in items:
            yield ListedAsset.from_api(item)


def indexed_paths(source: Source, objects: list[OriginObject]) -> list[str]:
    """The origin paths of the keys the indexer indexes (not folder markers)."""
    return [
        source.origin_path(source.bucket, o.key) or o.key
        for o in objects
        if not skip_reason(source, o.key)
    ]


def assets_of(client: ImgixClient, source: Source, paths: list[str]) -> Iterator[ListedAsset]:
    """A bounded run's imgix side: one get asset per path (its own, faster limit class)."""
    for path in paths:
        try:
            yield ListedAsset.from_api(client.get_asset(source.id, path))
        except ImgixNotFound:
            continue


def purge_records(state: StateStore, bucket: str, keys: list[str]) -> dict[str, bool]:
    """Whether the state table recorded each key's purge."""
    found = state.get_many((bucket, key) for key in keys)
    return {key: found.get((bucket, key)) is not None and found[(bucket, key)].told is Told.PURGED
            for key in keys}  # fmt: skip
