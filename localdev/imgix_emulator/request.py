"""One request as the resources see it: path parameters, query, headers and body."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from localdev.imgix_emulator.errors import ApiError


@dataclass
class Request:
    handler: BaseHTTPRequestHandler
    method: str
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)
    body_consumed: bool = False

    def header(self, name: str) -> str | None:
        return self.handler.headers.get(name)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def length(self) -> int:
        return int(self.header("Content-Length") or 0)

    def drain(self) -> None:
        """Read and drop an unread body, so that the keep-alive connection stays in step."""
        if self.body_consumed:
            return
        self.body_consumed = True
        left = self.length
        while left > 0:
            chunk = self.handler.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)

    def body(self, limit: int = 1 << 20) -> bytes:
        if self.length > limit:
            self.drain()
            raise ApiError(400, "Bad Request", f"body of {self.length} bytes exceeds {limit}")
        self.body_consumed = True
        return self.handler.rfile.read(self.length) if self.length else b""

    def json_body(self) -> dict[str, Any]:
        raw = self.body()
        if not raw:
            return {}
        try:
            found = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "Bad Request", f"body is not JSON: {exc}") from None
        if not isinstance(found, dict):
            raise ApiError(400, "Bad Request", "body must be a JSON object")
        return found

    def whole(self, name: str, default: int, least: int) -> int:
        """A whole-number query argument (page[number], page[size]); 400 otherwise."""
        raw = self.arg(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < least:
            raise ApiError(400, "Bad Request", f"{name} must be a whole number >= {least}")
        return int(raw)
