"""Streaming an S3 object's bytes to imgix's presigned storage URL, in constant memory."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from imgix_autoadder.ingest.job import PermanentUploadError


def check_presigned_url(url: str, host_pattern: str, allow_http: bool) -> None:
    """Object bytes go only to the storage host imgix is expected to hand out."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise PermanentUploadError(f"presigned URL scheme {parts.scheme!r} is not https")
    if not parts.hostname or not re.match(host_pattern, parts.hostname):
        raise PermanentUploadError(f"presigned URL host {parts.hostname!r} is not expected")


class SizedStream(io.RawIOBase):
    """A read-only view of a stream with a declared length.

    requests sends a body that has a length with Content-Length (not chunked) and reads
    it in small blocks, so memory stays constant whatever the object's size. The count
    of bytes that actually passed is kept to verify the size afterwards.
    """

    def __init__(self, stream: Any, length: int) -> None:
        super().__init__()
        self._stream = stream
        self._length = length
        self.passed = 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # requests sizes a body as len() - tell(); RawIOBase.tell() would raise, and
        # requests would then fall back to chunked encoding, which presigned PUTs refuse.
        return self.passed

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._length - self.passed
        if remaining <= 0:
            return b""
        want = remaining if size is None or size < 0 else min(size, remaining)
        chunk: bytes = self._stream.read(want)
        self.passed += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class LargeBlockAdapter(HTTPAdapter):
    """http.client reads a streamed body in `blocksize` pieces (16 KiB by default); 1 MiB
    pieces cut the per-block overhead of a multi-GB PUT while memory stays bounded."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = 1 << 20
        super().init_poolmanager(*args, **kwargs)


def streaming_session() -> requests.Session:
    session = requests.Session()
    session.mount("https://", LargeBlockAdapter())
    session.mount("http://", LargeBlockAdapter())
    return session


def s3_error_summary(body: str) -> str:
    """S3's error Code and Message only: a SignatureDoesNotMatch body also carries the
    signature and the string to sign, which must not reach a log or an execution history."""
    code = re.search(r"<Code>([^<]{0,100})</Code>", body)
    message = re.search(r"<Message>([^<]{0,200})</Message>", body)
    if code or message:
        return f"{code.group(1) if code else ''} {message.group(1) if message else ''}".strip()
    return "(no S3 error document)"
