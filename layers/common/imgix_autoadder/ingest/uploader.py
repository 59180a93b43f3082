"""Push ingest-bucket objects into imgix: direct upload when small, upload sessions when large.

The steps of an upload session are separate calls so that Step Functions can retry,
time-bound and catch each one (statemachine/upload_session.asl.json).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import requests
from botocore.exceptions import ClientError

from imgix_autoadder.core.limits import UPLOAD_SESSION_MAX_BYTES
from imgix_autoadder.core.settings import Settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError, ImgixUnavailable
from imgix_autoadder.ingest.job import (
    ImgixUnavailableError,
    PermanentUploadError,
    TransientUploadError,
    UploadJob,
    UploadSuperseded,
)
from imgix_autoadder.ingest.ledger import IngestLedger, is_superseded
from imgix_autoadder.ingest.session_store import UploadSessionStore
from imgix_autoadder.ingest.streaming import (
    SizedStream,
    check_presigned_url,
    s3_error_summary,
    streaming_session,
)
from imgix_autoadder.s3.events import ObjectChange, PoisonRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

FAILURE_TAG = "imgix-autoadder-upload"
DEFAULT_CONTENT_TYPE = "application/octet-stream"  # S3's own default for an object


class Uploader:
    def __init__(
        self,
        client: ImgixClient,
        s3: S3Client,
        settings: Settings,
        storage_session: requests.Session | None = None,
        session_store: DynamoDBClient | None = None,
        ledger: IngestLedger | None = None,
    ) -> None:
        self._client = client
        self._s3 = s3
        self._settings = settings
        self._ledger = ledger
        # Never the imgix client's session: the presigned URL must not see the API key.
        self._storage = storage_session or streaming_session()
        self._sessions = (
            UploadSessionStore(session_store, settings.upload_sessions_table)
            if session_store is not None
            else None
        )

    @property
    def sessions(self) -> UploadSessionStore:
        if self._sessions is None:
            raise PermanentUploadError("UPLOAD_SESSIONS_TABLE is not configured")
        return self._sessions

    # -- routing (ingest bucket events) -----------------------------------------------------
    def job_for(self, change: ObjectChange) -> UploadJob:
        if change.size is None:
            raise PoisonRecord(f"event for {change.key!r} carries no object size")
        if change.size > UPLOAD_SESSION_MAX_BYTES:
            raise PoisonRecord(
                f"object {change.key!r} is {change.size} bytes; imgix upload sessions take "
                f"at most {UPLOAD_SESSION_MAX_BYTES} bytes (5 GB)"
            )
        return UploadJob(
            bucket=change.bucket,
            key=change.key,
            version_id=change.version_id,
            etag=change.etag,
            size=change.size,
            source_id=self._settings.ingest_source_id,
            origin_path=change.key,
            sequencer=change.sequencer,
        )

    def is_direct(self, job: UploadJob) -> bool:
        return job.size < self._settings.direct_upload_limit_bytes

    def execution_input(self, job: UploadJob) -> dict[str, Any]:
        # The presigned URL never enters the execution: the steps pass the session id.
        return {
            "job": asdict(job),
            "settings": {
                "poll_interval_seconds": self._settings.upload_poll_interval_s,
                "max_status_polls": self._settings.upload_max_status_polls,
            },
        }

    def direct_upload(self, job: UploadJob) -> str:
        obj = self._get(job)
        body = obj["Body"].read()
        # MD5, not a security hash: S3's ETag of the single-part object imgix writes.
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self._expect(job, len(body), md5)
        try:
            self._call(
                self._client.upload,
                job.source_id,
                job.origin_path,
                body,
                obj.get("ContentType") or DEFAULT_CONTENT_TYPE,
            )
        except PermanentUploadError:
            self._forget(job)
            raise
        return self.dispose(job, self._settings.ingest_disposition, "uploaded")

    # -- ingest order and receipts (ledger.py) ----------------------------------------------
    def claim(self, job: UploadJob) -> bool:
        """Record this version as the newest of its key to be ingested; False when a newer
        one was already (then this one must never reach imgix)."""
        if self._ledger is None:
            return True
        return self._ledger.claim(job.bucket, job.key, job.sequencer)

    def _check_claim(self, job: UploadJob) -> None:
        if self._ledger is None:
            return
        if is_superseded(self._ledger.claimed(job.bucket, job.key), job.sequencer):
            raise UploadSuperseded(f"a newer version of {job.key!r} was ingested since")

    def _expect(self, job: UploadJob, size: int, md5: str = "") -> None:
        if self._ledger is not None:
            self._ledger.expect_upload(job.source_id, job.origin_path, size, md5)

    def _forget(self, job: UploadJob) -> None:
        if self._ledger is not None:
            self._ledger.forget_upload(job.source_id, job.origin_path)

    # -- upload session steps -----------------------------------------------------------------
    def create(self, job: UploadJob) -> dict[str, str]:
        superseded, head = self._check_current(job)
        if superseded:
            raise PermanentUploadError(f"not uploaded: {superseded}")
        self._check_claim(job)
        content_type = str(head.get("ContentType") or DEFAULT_CONTENT_TYPE)
        session = self._call(
            self._client.create_upload_session, job.source_id, job.origin_path, content_type
        )
        check_presigned_url(
            session.url,
            self._settings.upload_url_host_pattern,
            self._settings.upload_url_allow_http,
        )
        self.sessions.put(session.id, session.url)
        return {"id": session.id, "status": session.status, "content_type": content_type}

    def transfer(self, job: UploadJob, session: dict[str, str]) -> dict[str, float]:
        if job.size > UPLOAD_SESSION_MAX_BYTES:
            raise PermanentUploadError(f"{job.size} bytes is over the 5 GB session limit")
        url = self.sessions.url(session["id"])
        check_presigned_url(
            url, self._settings.upload_url_host_pattern, self._settings.upload_url_allow_http
        )
        obj = self._get(job)
        if int(obj["ContentLength"]) != job.size:
            raise PermanentUploadError(
                f"ingest object is {obj['ContentLength']} bytes, the event said {job.size}"
            )
        body = SizedStream(obj["Body"], job.size)
        # The PUT is the point of no return (a session imgix is never told to close still
        # closes after 8 hours): the last chance to leave a superseded version out.
        self._check_claim(job)
        self._expect(job, job.size)
        started = time.perf_counter()
        try:
            response = self._storage.put(
                url,
                data=body,
                # The type the session was created with: a URL signed with it refuses others.
                headers={"Content-Type": session.get("content_type") or DEFAULT_CONTENT_TYPE},
                timeout=(self._settings.connect_timeout_s, 120),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TransientUploadError(
                f"PUT to the presigned URL failed: {type(exc).__name__}"
            ) from None
        finally:
            obj["Body"].close()
        seconds = time.perf_counter() - started
        if response.status_code >= 500:
            raise TransientUploadError(f"presigned PUT answered {response.status_code}")
        if response.status_code >= 300:
            raise PermanentUploadError(
                f"presigned PUT answered {response.status_code}: {s3_error_summary(response.text)}"
            )
        if body.passed != job.size:
            raise PermanentUploadError(f"sent {body.passed} of {job.size} bytes")
        return {"bytes": body.passed, "seconds": round(seconds, 3)}

    def close(self, job: UploadJob, session: dict[str, str]) -> dict[str, str]:
        closed = self._call(self._client.close_upload_session, job.source_id, session["id"])
        self.sessions.forget(session["id"])  # the URL is of no use once the session is closed
        return {"status": closed.status}

    def check(self, job: UploadJob, session: dict[str, str], attempt: int) -> dict[str, Any]:
        status = self._call(self._client.get_upload_session, job.source_id, session["id"])
        return {"status": status.status, "attempt": attempt + 1}

    def finalize(self, job: UploadJob) -> dict[str, str]:
        return {"disposition": self.dispose(job, self._settings.ingest_disposition, "uploaded")}

    def fail(self, job: UploadJob, error: dict[str, Any]) -> dict[str, str]:
        reason = f"{error.get('Error', 'Error')}: {_cause(error.get('Cause'))}"[:1000]
        self._forget(job)
        disposition = self.dispose(job, self._settings.failure_disposition, "failed")
        return {"disposition": disposition, "reason": reason}

    def superseded(self, job: UploadJob, error: dict[str, Any]) -> dict[str, str]:
        """A newer version took this one's place: done with, like an uploaded one."""
        reason = _cause(error.get("Cause"))[:1000]
        disposition = self.dispose(job, self._settings.ingest_disposition, "superseded")
        return {"disposition": disposition, "reason": reason}

    # -- ingest order ------------------------------------------------------------------------
    def superseded_by(self, job: UploadJob) -> str:
        """Why this event's object must not be uploaded ('' when it must): the ingest key
        holds a newer version, or this version is gone or already handled (a redelivery).

        Checked against S3 itself, since events arrive in any order and more than once."""
        return self._check_current(job)[0]

    def _check_current(self, job: UploadJob) -> tuple[str, Mapping[str, object]]:
        """superseded_by's reason, with the HEAD of the current object it was read from."""
        try:
            head = self._s3.head_object(Bucket=job.bucket, Key=job.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return "the ingest object is gone (already uploaded and deleted, or removed)", {}
            raise
        return self._superseded_reason(job, head), head

    def _superseded_reason(self, job: UploadJob, head: Mapping[str, object]) -> str:
        current_version = str(head.get("VersionId") or "")
        if job.version_id and current_version and current_version != job.version_id:
            return f"a newer version ({current_version}) of the ingest key is current"
        if not job.version_id and str(head.get("ETag", "")).strip('"') != job.etag:
            return "the ingest key was overwritten since this event"
        version: dict[str, Any] = {"VersionId": job.version_id} if job.version_id else {}
        tags = self._s3.get_object_tagging(Bucket=job.bucket, Key=job.key, **version)
        for tag in tags.get("TagSet", []):
            if tag.get("Key") == FAILURE_TAG:
                return f"this version was handled already ({FAILURE_TAG}={tag.get('Value')})"
        return ""

    # -- plumbing ----------------------------------------------------------------------------
    def dispose(self, job: UploadJob, disposition: str, outcome: str) -> str:
        """What becomes of the ingest object: deleted, tagged with the outcome, or kept."""
        version: dict[str, Any] = {"VersionId": job.version_id} if job.version_id else {}
        if disposition == "delete":
            self._s3.delete_object(Bucket=job.bucket, Key=job.key, **version)
        elif disposition == "tag":
            self._s3.put_object_tagging(
                Bucket=job.bucket,
                Key=job.key,
                Tagging={"TagSet": [{"Key": FAILURE_TAG, "Value": outcome}]},
                **version,
            )
        return disposition

    def _get(self, job: UploadJob) -> GetObjectOutputTypeDef:
        # Pin the exact object the event announced: a later overwrite is a later event.
        pin: dict[str, Any] = (
            {"VersionId": job.version_id} if job.version_id else {"IfMatch": job.etag}
        )
        return self._s3.get_object(Bucket=job.bucket, Key=job.key, **pin)

    @staticmethod
    def _call(method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except ImgixUnavailable as exc:
            raise ImgixUnavailableError(str(exc), exc.retry_after_s or 1.0) from None
        except ImgixError as exc:
            if exc.transient:
                raise TransientUploadError(str(exc)) from None
            raise PermanentUploadError(str(exc)) from None


def _cause(cause: Any) -> str:
    """Step Functions hands a Lambda error's Cause as a JSON string; keep its message."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
            if isinstance(parsed, dict):
                return str(parsed.get("errorMessage") or parsed)
        except ValueError:
            return cause
    return str(cause)
