"""The one imgix Management API client: each endpoint the product calls, as a method."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from imgix_autoadder.imgix.documents import UploadSession, data_of, list_of, session_of
from imgix_autoadder.imgix.errors import ImgixNotFound
from imgix_autoadder.imgix.paths import encode_origin_path
from imgix_autoadder.imgix.transport import Transport

MAX_PAGES = 1000
# imgix documents that a purge of the same URL within 10 s may answer 409 and still
# succeed (Management API, Purges).
PURGE_REPEATED = 409


@dataclass
class ImgixClient(Transport):
    """Sources, assets, purges and uploads; Transport paces, retries and authenticates."""

    # -- Sources -------------------------------------------------------------------------
    def list_sources(
        self,
        deployment_type: str | None = None,
        filters: dict[str, str] | None = None,
        sort: str | None = None,
        page_size: int = 100,
    ) -> list[dict[str, Any]]:
        """Every Source, through every page (Sources: filters, sorts; page[number] from 0
        and page[size], as imgix-management-js shows them)."""
        params = {f"filter[{name}]": value for name, value in (filters or {}).items()}
        if deployment_type:
            params["filter[deployment.type]"] = deployment_type
        if sort:
            params["sort"] = sort
        found: list[dict[str, Any]] = []
        for number in range(MAX_PAGES):
            page = {**params, "page[number]": str(number), "page[size]": str(page_size)}
            body = self.request("GET", "/api/v1/sources", "list sources", params=page)
            items = list_of(body, "list sources")
            found += items
            if len(items) < page_size:
                break
        return found

    def create_source(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Sources: POST sources, "Create (and deploy) a new Source" (60 an hour)."""
        body = {
            "data": {"type": "sources", "attributes": attributes},
            "jsonapi": {"version": "1.0"},
        }
        # Not idempotent: a retry after an unanswered request could create a second Source.
        answer = self.request("POST", "/api/v1/sources", "create source", json=body, resend=False)
        return data_of(answer, "create source")

    def get_source(self, source_id: str) -> dict[str, Any]:
        body = self.request("GET", f"/api/v1/sources/{quote(source_id, safe='')}", "get source")
        return data_of(body, "get source")

    def update_source(self, source_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        body = {"data": {"id": source_id, "type": "sources", "attributes": attributes}}
        answer = self.request(
            "PATCH", f"/api/v1/sources/{quote(source_id, safe='')}", "update source", json=body
        )
        return data_of(answer, "update source")

    # -- Assets --------------------------------------------------------------------------
    def add_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"{self._source(source_id)}/assets/add/{encode_origin_path(origin_path)}"
        return self.request("POST", path, "add asset", json={})

    def refresh_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"{self._source(source_id)}/assets/refresh/{encode_origin_path(origin_path)}"
        return self.request("POST", path, "refresh asset", json={}, pacer=self.pacers.refresh)

    def get_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        """Management API, Assets: GET sources/:source_id/assets/:origin_path."""
        path = f"{self._source(source_id)}/assets/{encode_origin_path(origin_path)}"
        answer = self.request("GET", path, "get asset", pacer=self.pacers.get_asset)
        return data_of(answer, "get asset")

    def update_asset(
        self, source_id: str, origin_path: str, attributes: dict[str, Any]
    ) -> dict[str, Any]:
        """Management API, Assets: PATCH sources/:source_id/assets/:origin_path (Edit)."""
        path = f"{self._source(source_id)}/assets/{encode_origin_path(origin_path)}"
        body = {
            "data": {"id": f"{source_id}/{origin_path}", "type": "assets", "attributes": attributes}
        }
        return data_of(self.request("PATCH", path, "update asset", json=body), "update asset")

    def asset_pages(
        self, source_id: str, cursor: str = "0", page_size: int = 100
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Every asset of a Source, a page at a time, with the cursor of the next page (None
        after the last): GET sources/:source_id/assets with page[cursor] and page[limit],
        following meta.cursor.hasMore and .next as imgix-hygraph does. A page may hold fewer
        than asked: only hasMore ends the listing."""
        path = f"{self._source(source_id)}/assets"
        next_cursor: str | None = cursor
        while next_cursor is not None:
            query = {"page[cursor]": next_cursor, "page[limit]": str(page_size)}
            body = self.request("GET", path, "list assets", params=query)
            items = list_of(body, "list assets")
            paging = (body.get("meta") or {}).get("cursor") or {}
            more = bool(paging.get("hasMore")) and paging.get("next") not in (None, "")
            next_cursor = str(paging["next"]) if more else None
            yield items, next_cursor

    def has_asset(self, source_id: str, origin_path: str) -> bool:
        try:
            self.get_asset(source_id, origin_path)
        except ImgixNotFound:
            return False
        return True

    def purge(self, url: str) -> dict[str, Any]:
        body = {"data": {"type": "purges", "attributes": {"url": url}}}
        return self.request(
            "POST",
            "/api/v1/purge",
            "purge",
            json=body,
            pacer=self.pacers.purge,
            also_success=(PURGE_REPEATED,),
        )

    # -- Uploads -------------------------------------------------------------------------
    def upload(
        self, source_id: str, origin_path: str, body: bytes, content_type: str
    ) -> dict[str, Any]:
        # imgix replaces an existing file only when asked (Management API, Assets: upload).
        path = f"{self._source(source_id)}/upload/{encode_origin_path(origin_path)}"
        path += "?overwrite=true"
        return self.request(
            "POST",
            path,
            "upload",
            data=body,
            headers={"Content-Type": content_type},
            pacer=self.pacers.upload,
        )

    def create_upload_session(
        self, source_id: str, origin_path: str, content_type: str
    ) -> UploadSession:
        """The file's Content-Type goes with the request, as imgix's upload-session demo
        sends it: the presigned URL may be signed with it, and the PUT must then match."""
        path = f"{self._source(source_id)}/upload-sessions/{encode_origin_path(origin_path)}"
        # Not idempotent: a retry after an unanswered request would open a second session.
        return self._session(
            "POST",
            path,
            "create upload session",
            data=b"",
            headers={"Content-Type": content_type},
            resend=False,
        )

    def close_upload_session(self, source_id: str, session_id: str) -> UploadSession:
        path = f"{self._source(source_id)}/upload-sessions/{quote(session_id, safe='')}"
        return self._session("POST", path, "close upload session", json={})

    def get_upload_session(self, source_id: str, session_id: str) -> UploadSession:
        path = f"{self._source(source_id)}/upload-sessions/{quote(session_id, safe='')}"
        return self._session("GET", path, "upload session status")

    # -- plumbing ------------------------------------------------------------------------
    @staticmethod
    def _source(source_id: str) -> str:
        return f"/api/v1/sources/{quote(source_id, safe='')}"

    def _session(self, method: str, path: str, operation: str, **kw: Any) -> UploadSession:
        return session_of(data_of(self.request(method, path, operation, **kw), operation))
