"""What the origin bucket holds now: imgix fetches the current object, whatever event we hold.

An event alone cannot say what is current: events arrive late, twice and out of order, a
delete may remove an old version only, and deleting a delete marker brings an object back.
So every decision asks S3 itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOT_FOUND = ("404", "NoSuchKey", "NotFound")
# What imgix may serve differently although the bytes are the same (a copy in place that
# only changes them still needs a refresh).
SERVED_METADATA = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
)


@dataclass(frozen=True)
class Current:
    """The key's current object, or its absence (with the delete marker's version id)."""

    exists: bool
    etag: str = ""
    version_id: str = ""
    fingerprint: str = ""
    size: int = -1
    last_modified_ms: int = 0
    kms_encrypted: bool = False  # then the ETag is not the MD5 of the bytes
    user_metadata: tuple[tuple[str, str], ...] = ()  # x-amz-meta-*, as S3 keeps it
    tags: tuple[tuple[str, str], ...] = ()  # the object's tags, when asked for (TAG_FIELDS)


def fingerprint(head: Mapping[str, object]) -> str:
    """What imgix serves of an object besides its bytes. Not its user metadata
    (x-amz-meta-*): imgix documents no use of it in what it renders or serves, so a change
    of it alone is worth no refresh."""
    served = {name: str(head.get(name, "")) for name in SERVED_METADATA}
    digest = hashlib.sha256(json.dumps(served, sort_keys=True).encode()).hexdigest()
    return digest[:16]


class S3Origin:
    def __init__(self, s3_client: S3Client, read_tags: bool = False) -> None:
        self._s3 = s3_client
        self._read_tags = read_tags  # GetObjectTagging too: a call more per reading

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the key holds an object now: one HeadObject, never its tags."""
        return self._current(bucket, key, with_tags=False).exists

    def current(self, bucket: str, key: str) -> Current:
        return self._current(bucket, key, with_tags=self._read_tags)

    def _current(self, bucket: str, key: str, with_tags: bool) -> Current:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
                headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                # A versioned bucket names the delete marker that hides the key.
                marker = headers.get("x-amz-version-id", "")
                return Current(False, version_id=marker if marker != "null" else "")
            raise
        version = str(head.get("VersionId") or "")
        modified = head.get("LastModified")
        return Current(
            True,
            etag=str(head["ETag"]).strip('"'),
            version_id="" if version == "null" else version,
            fingerprint=fingerprint(head),
            size=int(head.get("ContentLength", -1)),
            last_modified_ms=int(modified.timestamp() * 1000) if modified else 0,
            kms_encrypted=str(head.get("ServerSideEncryption", "")).startswith("aws:kms"),
            user_metadata=tuple(sorted((head.get("Metadata") or {}).items())),
            tags=self._tags(bucket, key, version) if with_tags else (),
        )

    def _tags(self, bucket: str, key: str, version: str) -> tuple[tuple[str, str], ...]:
        """The tags of the version just read (HEAD and tags of one object, even if another
        is put between the two calls); an unversioned bucket has only the current one."""
        try:
            if version and version != "null":
                answer = self._s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=version)
            else:
                answer = self._s3.get_object_tagging(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (*NOT_FOUND, "NoSuchVersion"):
                return ()  # deleted since the HEAD: its own event follows
            raise
        return tuple(sorted((tag["Key"], tag["Value"]) for tag in answer.get("TagSet", [])))

    def _history(self, bucket: str, key: str) -> tuple[list[Mapping[str, object]], bool]:
        """The key's own versions and delete markers (a first page), and whether the
        listing was cut short by other keys sharing the prefix."""
        # botocore asks for EncodingType=url and decodes the keys itself: XML cannot carry
        # every character a key may hold.
        listed = self._s3.list_object_versions(Bucket=bucket, Prefix=key, MaxKeys=10)
        entries: list[Mapping[str, object]] = [
            *listed.get("Versions", []),
            *listed.get("DeleteMarkers", []),
        ]
        mine = [entry for entry in entries if entry.get("Key") == key]
        return mine, bool(listed.get("IsTruncated"))

    def has_history(self, bucket: str, key: str) -> bool:
        """S3 has held this key (a versioned bucket keeps its versions and delete markers)."""
        mine, truncated = self._history(bucket, key)
        return bool(mine) or truncated

    def is_first_version(self, bucket: str, key: str, version_id: str) -> bool | None:
        """True when the key never held another object (nor was deleted) before this one;
        None when S3 cannot say (an unversioned bucket keeps no trace of an overwrite).

        When it is the first, `add` is enough; otherwise imgix may hold older bytes, which
        only `refresh` replaces (imgix's add does not reprocess an asset it has)."""
        if not version_id:
            return None
        mine, truncated = self._history(bucket, key)
        if truncated and len(mine) < 2:
            return False  # other keys share the prefix: cannot tell, refresh is safe
        return [entry.get("VersionId") for entry in mine] == [version_id]
