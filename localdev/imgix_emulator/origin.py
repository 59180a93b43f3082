"""The Source's storage, as imgix reads and writes it (test machinery, not imgix)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class OriginObject:
    etag: str
    size: int
    content_type: str


class Origin(Protocol):
    def head(self, bucket: str, key: str) -> OriginObject | None: ...
    def put_file(self, bucket: str, key: str, path: Path, content_type: str) -> OriginObject: ...


class S3Origin:
    """The Source's S3 bucket, read and written through boto3 (moto locally)."""

    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def head(self, bucket: str, key: str) -> OriginObject | None:
        try:
            found = self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore ClientError 404/NoSuchKey/NoSuchBucket
            if "404" in str(exc) or "Not Found" in str(exc) or "NoSuch" in str(exc):
                return None
            raise
        return OriginObject(
            etag=str(found["ETag"]).strip('"'),
            size=int(found.get("ContentLength", 0)),
            content_type=str(found.get("ContentType") or "application/octet-stream"),
        )

    def etag(self, bucket: str, key: str) -> str | None:
        found = self.head(bucket, key)
        return found.etag if found else None

    def put_file(self, bucket: str, key: str, path: Path, content_type: str) -> OriginObject:
        self._s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        found = self.head(bucket, key)
        return found or OriginObject("", path.stat().st_size, content_type)
