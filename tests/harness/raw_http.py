"""Requests the project's client would never make, sent as imgix's docs show them."""

from __future__ import annotations

from typing import Any

import requests

from localdev.imgix_emulator import ImgixEmulator
from tests.harness.world import API_KEY

CONTRACT_BUCKET = "contract-origin"


def raw(
    emulator: ImgixEmulator, method: str, path: str, key: str = API_KEY, **kw: Any
) -> requests.Response:
    """A request the project's client would not make, sent as imgix's docs show them."""
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return requests.request(method, emulator.base_url + path, headers=headers, timeout=10, **kw)


def jsonapi(data: Any) -> dict[str, Any]:
    return {"data": data, "jsonapi": {"version": "1.0"}}
