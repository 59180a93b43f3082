"""What the origin bucket holds now: imgix fetches the current bytes, whatever event we hold."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class S3Origin:
    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def current_etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag now, or None when it no longer exists."""
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return str(head["ETag"]).strip('"')
