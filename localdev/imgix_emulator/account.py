"""What one imgix account holds: Sources, the Asset Manager's index, the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.imgix_emulator.errors import ApiError
from localdev.imgix_emulator.origin import Origin


@dataclass
class Asset:
    """An indexed asset. `etag`, `version`, `refreshes` and `fetched_at` are the emulator's
    own bookkeeping for tests; the API shows only documented attributes (assets.py)."""

    source_id: str
    origin_path: str
    etag: str
    size: int = 0
    content_type: str = "application/octet-stream"
    uploaded_by_api: bool = False
    created_at: int = field(default_factory=lambda: int(time.time()))
    modified_at: int = field(default_factory=lambda: int(time.time()))
    version: int = 1  # bumped each time imgix reprocesses (new ETag)
    refreshes: int = 0
    # When imgix last fetched the origin for it: add of a new asset, every refresh, upload.
    fetched_at: float = field(default_factory=time.monotonic)
    editable: dict[str, Any] = field(default_factory=dict)


class Account:
    def __init__(self, origin: Origin | None, store_dir: Path) -> None:
        self.origin = origin
        self.store_dir = store_dir
        self.lock = threading.RLock()
        # Wall clock for what imgix dates (sessions' 8 hours, date_deployed); a test may
        # replace it to move time on.
        self.clock: Callable[[], float] = time.time
        self.sources: dict[str, dict[str, Any]] = {}
        self.assets: dict[tuple[str, str], Asset] = {}

    def source(self, source_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.sources.get(source_id)
        if found is None:
            raise ApiError(404, "Not Found", f"Source {source_id} not found")
        return found

    @staticmethod
    def origin_key(source: dict[str, Any], origin_path: str) -> tuple[str, str]:
        deployment = source["attributes"]["deployment"]
        prefix = (deployment.get("s3_prefix") or "").strip("/")
        return deployment["s3_bucket"], f"{prefix}/{origin_path}" if prefix else origin_path
