"""Assets, per the Management API's Assets page (docs.imgix.com/apis/management/assets)
and https://docs.imgix.com/getting-started/setup/asset-manager/how-assets-are-added.

"GET Asset operations require the Asset Manager Browse permission. All other Asset
operations require the Asset Manager Edit permission"; refresh also needs Asset Purge.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from localdev.imgix_emulator.account import Account, Asset
from localdev.imgix_emulator.errors import ApiError, document
from localdev.imgix_emulator.origin import OriginObject
from localdev.imgix_emulator.request import Request

# Attributes a PATCH may change. Undocumented which ones; modelled on the Asset Manager's
# editable metadata (imgix-management-js README edits custom_fields).
EDITABLE = ("categories", "custom_fields", "description", "name", "tags")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100


def media_kind(content_type: str) -> str:
    """Asset Filters, media_kind: IMAGE, ANIMATION, DOCUMENT, VECTOR (VIDEO for video)."""
    if content_type == "image/gif":
        return "ANIMATION"
    if content_type == "image/svg+xml":
        return "VECTOR"
    if content_type == "application/pdf":
        return "DOCUMENT"
    if content_type.startswith("video/"):
        return "VIDEO"
    return "IMAGE"


class Assets:
    def __init__(self, account: Account) -> None:
        self.account = account
        # Adding an asset: "Use the add endpoint to queue an Origin asset path". Both
        # answers the docs allow: "now" indexes before answering (a missing file is a 404);
        # "later" answers at once and indexes when the queue runs (settle()), dropping a
        # path whose file the origin does not have.
        self.add_timing = "now"
        self._queue: deque[tuple[str, str]] = deque()
        self._queue_lock = threading.Lock()

    # -- set-up and inspection for tests -------------------------------------------------------
    def seed(self, source_id: str, origin_path: str, etag: str) -> None:
        """An asset imgix indexed some other way (a render, the dashboard)."""
        with self.account.lock:
            self.account.assets[(source_id, origin_path)] = Asset(source_id, origin_path, etag)

    def settle(self) -> int:
        """Run the add queue to the end, as imgix would in a few minutes; how many ran."""
        ran = 0
        while True:
            with self._queue_lock:
                if not self._queue:
                    return ran
                source_id, path = self._queue.popleft()
            ran += 1
            found = self._fetch(self.account.source(source_id), path)
            if found is not None:
                self._index(source_id, path, found, refetched=False)

    # -- routes ------------------------------------------------------------------------------
    def index(self, request: Request) -> tuple[int, Any]:
        """GET sources/:source_id/assets: "Retrieve a list of assets from the Source"
        (Asset Browse), filter[origin_path] (Asset Filters). imgix's clients page it two
        ways, and both are served:
        - page[cursor] and page[limit], answered with meta.cursor {current, hasMore, next,
          totalRecords} (imgix-hygraph, src/app/asset-dialog/useImgixAssets.ts, which sends
          the offset as the cursor and reads totalRecords as a string);
        - page[number] from 0 and page[size] (imgix-management-js README, "Paging by page
          number and size"), answered with meta.pagination.
        Undocumented, modelled as: 100 a page when no size is asked, and never more than
        MAX_PAGE_SIZE, so a client must follow hasMore (or a short page), not its own count;
        assets in origin-path order; a cursor is opaque to the client (here the offset)."""
        source_id = request.params["source_id"]
        self.account.source(source_id)
        with self.account.lock:
            found = [a for (sid, _), a in sorted(self.account.assets.items()) if sid == source_id]
        wanted = request.arg("filter[origin_path]")
        if wanted is not None:
            found = [a for a in found if "/" + a.origin_path == "/" + wanted.lstrip("/")]
        if request.arg("page[cursor]") is not None or request.arg("page[limit]") is not None:
            start = request.whole("page[cursor]", 0, 0)
            limit = min(MAX_PAGE_SIZE, request.whole("page[limit]", DEFAULT_PAGE_SIZE, 1))
            end = min(len(found), start + limit)
            cursor = {
                "current": str(start),
                "hasMore": end < len(found),
                "next": str(end) if end < len(found) else None,
                "totalRecords": str(len(found)),
            }
            page = [asset_resource(a) for a in found[start:end]]
            return 200, document(page, {"cursor": cursor})
        number = request.whole("page[number]", 0, 0)
        size = min(MAX_PAGE_SIZE, request.whole("page[size]", DEFAULT_PAGE_SIZE, 1))
        page = [asset_resource(a) for a in found[number * size : (number + 1) * size]]
        return 200, document(page, {"pagination": {"total_records": len(found)}})

    def get(self, request: Request) -> tuple[int, Any]:
        """GET sources/:source_id/assets/:origin_path (Asset Browse); 10 per second."""
        source_id, path = request.params["source_id"], request.params["origin_path"]
        self.account.source(source_id)
        with self.account.lock:
            asset = self.account.assets.get((source_id, path))
        if asset is None:
            raise ApiError(404, "Not Found", "asset not found")
        return 200, document(asset_resource(asset))

    def patch(self, request: Request) -> tuple[int, Any]:
        """PATCH sources/:source_id/assets/:origin_path: "Update a single asset" (Edit)."""
        source_id, path = request.params["source_id"], request.params["origin_path"]
        self.account.source(source_id)
        data = request.json_body().get("data")
        if not isinstance(data, dict) or data.get("type") != "assets":
            raise ApiError(400, "Bad Request", "body must be {data: {type: 'assets', ...}}")
        with self.account.lock:
            asset = self.account.assets.get((source_id, path))
            if asset is None:
                raise ApiError(404, "Not Found", "asset not found")
            attributes = data.get("attributes") or {}
            unknown = sorted(set(attributes) - set(EDITABLE))
            if unknown:
                raise ApiError(400, "Bad Request", f"cannot change {', '.join(unknown)}")
            asset.editable.update(attributes)
            asset.modified_at = int(self.account.clock())
            return 200, document(asset_resource(asset))

    def add(self, request: Request) -> tuple[int, Any]:
        """POST .../assets/add/:origin_path, "with an empty POST body": queue the path.
        "For an asset to be added successfully, the asset must exist at the specified
        asset path." Adding an asset already indexed changes nothing (undocumented:
        modelled as a no-op; refresh is the documented way to refetch)."""
        request.drain()
        source_id, path = request.params["source_id"], request.params["origin_path"]
        source = self.account.source(source_id)
        if self.add_timing == "later":
            with self._queue_lock:
                self._queue.append((source_id, path))
            # Undocumented answer to a queued add: modelled as the resource identifier.
            return 200, document({"type": "assets", "id": f"{source_id}/{path}"})
        with self.account.lock:
            known = self.account.assets.get((source_id, path))
        if known is not None:
            return 200, document(asset_resource(known))
        found = self._fetch(source, path)
        if found is None:
            raise ApiError(404, "Not Found", f"asset {path!r} was not found at the origin")
        return 200, document(asset_resource(self._index(source_id, path, found, False)))

    def refresh(self, request: Request) -> tuple[int, Any]:
        """POST .../assets/refresh/:origin_path: "Refetch the asset from the Origin.
        Reprocess the asset if the ETag has changed ... If the asset has never been pulled
        into the Asset Manager, the refresh endpoint will pull the asset ... Purge the asset
        from all Imgix caches." A file missing at the origin: undocumented, modelled as 404."""
        request.drain()
        source_id, path = request.params["source_id"], request.params["origin_path"]
        found = self._fetch(self.account.source(source_id), path)
        if found is None:
            raise ApiError(404, "Not Found", f"asset {path!r} was not found at the origin")
        asset = self._index(source_id, path, found, refetched=True)
        with self.account.lock:
            asset.refreshes += 1
        return 200, document(asset_resource(asset))

    # -- shared with uploads -----------------------------------------------------------------
    def publish(
        self, source: dict[str, Any], source_id: str, path: str, file: Path, content_type: str
    ) -> Asset:
        """An upload: imgix writes the file to the Source's storage, then indexes it."""
        origin = self.account.origin
        if origin is not None:
            stored = origin.put_file(*self.account.origin_key(source, path), file, content_type)
        else:
            stored = OriginObject(_digest(file), file.stat().st_size, content_type)
        asset = self._index(source_id, path, stored, refetched=True)
        with self.account.lock:
            asset.uploaded_by_api = True
        return asset

    def exists_at_origin(self, source: dict[str, Any], path: str) -> bool:
        return self._fetch(source, path) is not None

    def _fetch(self, source: dict[str, Any], path: str) -> OriginObject | None:
        origin = self.account.origin
        if origin is None:  # no storage behind the emulator: every path "exists"
            return OriginObject(_digest_text(path), 0, "application/octet-stream")
        return origin.head(*self.account.origin_key(source, path))

    def _index(self, source_id: str, path: str, found: OriginObject, refetched: bool) -> Asset:
        with self.account.lock:
            asset = self.account.assets.get((source_id, path))
            if asset is None:
                asset = Asset(source_id, path, found.etag, found.size, found.content_type)
                self.account.assets[(source_id, path)] = asset
                return asset
            if asset.etag != found.etag:  # reprocessed only when the ETag changed
                asset.etag, asset.version = found.etag, asset.version + 1
                asset.size, asset.content_type = found.size, found.content_type
                asset.modified_at = int(self.account.clock())
            if refetched:
                asset.fetched_at = time.monotonic()
            return asset


def asset_resource(asset: Asset) -> dict[str, Any]:
    """The documented asset attributes; never the emulator's own bookkeeping."""
    return {
        "type": "assets",
        "id": f"{asset.source_id}/{asset.origin_path}",
        "attributes": {
            "categories": asset.editable.get("categories", []),
            "content_type": asset.content_type,
            "custom_fields": asset.editable.get("custom_fields", {}),
            "date_created": asset.created_at,
            "date_modified": asset.modified_at,
            "description": asset.editable.get("description"),
            "file_size": asset.size,
            "media_kind": media_kind(asset.content_type),
            "name": asset.editable.get("name"),
            "origin_path": "/" + asset.origin_path,
            "source_id": asset.source_id,
            "tags": asset.editable.get("tags", {}),
            "uploaded_by_api": asset.uploaded_by_api,
        },
    }


def _digest(file: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with file.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest_text(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
