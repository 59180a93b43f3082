"""Purges, per the Purges page (docs.imgix.com/apis/management/purges).

POST purge, Purge permission, body {data: {type: "purges", attributes: {url}}}. "URL's
domain must be one associated with the current account." "Purge requests for the same
image URL should be spaced at least 10 seconds apart, otherwise a 409 status code may be
returned ... Purge requests will still be successful regardless of a duplicate request."
The answer: {data: {attributes: {purge_id}, id, type: "purges"}, included, jsonapi, meta}.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from localdev.imgix_emulator.errors import ApiError, document
from localdev.imgix_emulator.request import Request
from localdev.imgix_emulator.sources import Sources

REPEAT_WINDOW_S = 10.0


class Purges:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        # A repeat within 10 s "may" answer 409: both answers, chosen per test.
        self.repeat_answer = "409"
        self.purges: list[str] = []
        self.purge_log: list[tuple[float, str]] = []  # (when, URL), for ordering checks
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def purge(self, request: Request) -> tuple[int, Any]:
        data = request.json_body().get("data")
        url = (data.get("attributes") or {}).get("url") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("type") != "purges" or not isinstance(url, str):
            raise ApiError(
                400, "Bad Request", "body must be {data: {type: 'purges', attributes: {url}}}"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "Bad Request", "url must be a fully qualified URL")
        if parts.hostname not in self.sources.domains():
            # Undocumented status: modelled as 400, the Overview's "validation failed".
            raise ApiError(
                400, "Bad Request", f"{parts.hostname!r} is not a domain of this account"
            )
        now = time.monotonic()
        with self._lock:
            # The purge happens either way; only the answer differs.
            repeated = now - self._last.get(url, -REPEAT_WINDOW_S) < REPEAT_WINDOW_S
            self._last[url] = now
            self.purges.append(url)
            self.purge_log.append((now, url))
        if repeated and self.repeat_answer == "409":
            raise ApiError(409, "Conflict", "duplicate purge request within 10 seconds")
        purge_id = secrets.token_hex(16)
        return 200, document(
            {"type": "purges", "id": purge_id, "attributes": {"purge_id": purge_id}}
        )
