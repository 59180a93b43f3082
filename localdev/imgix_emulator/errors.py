"""Auth and errors: how imgix authenticates a request and shapes what goes wrong.

Management API, Overview (docs.imgix.com/apis/management/overview):
- "Authorization: Bearer <your-api-key>" on every call.
- Permissions: Sources, Purge, Asset Manager Browse, Asset Manager Edit ("implicitly
  includes Asset Manager Browse").
- Errors: instead of `data`, an `errors` list of objects with `detail`, `id` ("Unique
  identifier of the request"), `status` and `title`. Statuses: 400 bad request /
  validation failed, 401 unauthorized, 404 not found, 405 method not allowed, 429 rate
  limit exceeded, 500.
- Success documents carry `data`, `included`, `jsonapi: {version: "1.0"}` and `meta`
  (Sources and Purges examples).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

SOURCES = "sources"
PURGE = "purge"
ASSET_BROWSE = "asset_manager_browse"
ASSET_EDIT = "asset_manager_edit"
ALL_PERMISSIONS = frozenset({SOURCES, PURGE, ASSET_BROWSE, ASSET_EDIT})
# "Asset Manager Edit ... implicitly includes Asset Manager Browse."
IMPLIED = {ASSET_EDIT: frozenset({ASSET_BROWSE})}
BEARER = "Bearer "


class ApiError(Exception):
    def __init__(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}


def error_document(status: int, title: str, detail: str) -> dict[str, Any]:
    """Overview, Errors: detail, id (of the request), status (a string), title."""
    return {
        "errors": [
            {"detail": detail, "id": secrets.token_hex(12), "status": str(status), "title": title}
        ]
    }


def document(data: Any, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A success document, as the Sources and Purges examples show it."""
    return {"data": data, "included": [], "jsonapi": {"version": "1.0"}, "meta": meta or {}}


def authenticate(header: str | None, keys: dict[str, frozenset[str]]) -> frozenset[str]:
    """The key's permissions, with the ones they imply; 401 for a missing or unknown key."""
    if not header or not header.startswith(BEARER):
        raise ApiError(401, "Unauthorized", "missing Bearer API key")
    granted = keys.get(header[len(BEARER) :])
    if granted is None:
        raise ApiError(401, "Unauthorized", "invalid API key")
    return granted.union(*(IMPLIED.get(p, frozenset()) for p in granted))


def require(granted: frozenset[str], needed: Iterable[str]) -> None:
    """A key without a needed permission. Undocumented: the Overview lists no 403 and says
    401 means "your API key ... is invalid"; modelled as 403 Forbidden, naming the
    permission, since the key itself is valid."""
    missing = sorted(set(needed) - granted)
    if missing:
        raise ApiError(403, "Forbidden", f"API key lacks the {', '.join(missing)} permission")
