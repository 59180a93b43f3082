"""An upload job (one ingest object version for one Source) and how an upload can fail."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


class TransientUploadError(Exception):
    """Worth retrying (Step Functions Retry matches this name)."""


class ImgixUnavailableError(TransientUploadError):
    """imgix is down (the stack's breaker is open): worth retrying for hours, not minutes.
    The state machine retries it on its own schedule; the router hands the record back to
    its queue with a delay instead of spending a receive."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentUploadError(Exception):
    """No retry can help: the execution goes to RecordFailure."""


class UploadSuperseded(PermanentUploadError):
    """A newer version of the ingest key was uploaded or started: this one never will be
    (the execution goes to RecordSuperseded and succeeds; it is not a failure)."""


@dataclass(frozen=True)
class UploadJob:
    bucket: str
    key: str
    version_id: str
    etag: str
    size: int
    source_id: str
    origin_path: str
    sequencer: str = ""  # the ingest event's: orders the versions of one key

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadJob:
        # An execution started before `sequencer` existed has none: S3 alone orders it.
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def execution_name(self, sequencer: str) -> str:
        """The same S3 event always yields the same name, so a duplicate starts nothing."""
        identity = "\n".join([self.bucket, self.key, self.version_id, self.etag, sequencer])
        return "upload-" + hashlib.sha256(identity.encode()).hexdigest()[:64]
