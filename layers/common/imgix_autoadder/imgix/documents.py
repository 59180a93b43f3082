"""JSON:API documents as imgix sends them: a resource, a list of them, an upload session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from imgix_autoadder.imgix.errors import ImgixError, readable

JSONAPI = "application/vnd.api+json"


@dataclass(frozen=True)
class UploadSession:
    id: str
    status: str
    url: str


def session_of(data: dict[str, Any]) -> UploadSession:
    found = data.get("attributes")
    attributes: dict[str, Any] = found if isinstance(found, dict) else {}
    return UploadSession(
        id=str(data.get("id") or attributes.get("id") or ""),
        status=str(attributes.get("status", "")),
        url=str(attributes.get("url", "")),
    )


def body_of(response: requests.Response) -> dict[str, Any]:
    """A success body: JSON:API when imgix sent it; anything else reads as empty."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {"unparsed": readable(response.text)}
    return body if isinstance(body, dict) else {"unparsed": readable(response.text)}


def data_of(body: dict[str, Any], operation: str) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise ImgixError(
            0,
            "Malformed response",
            f"expected a JSON:API document with data, got {body}"[:300],
            operation,
        )
    return data


def list_of(body: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ImgixError(0, "Malformed response", "expected a list of resources", operation)
    return data
