"""An S3 key as an imgix origin path in a Management API URL."""

from __future__ import annotations

from urllib.parse import quote


def encode_origin_path(origin_path: str) -> str:
    """Percent-encode each segment so that no key can address another endpoint.

    '/' separates segments and is kept; everything else reserved is encoded, and the dot
    segments '.' and '..' are encoded too, since HTTP clients collapse them literally.
    """

    def segment(part: str) -> str:
        if part in (".", ".."):
            return part.replace(".", "%2E")
        return quote(part, safe="")

    return "/".join(segment(part) for part in origin_path.split("/"))
