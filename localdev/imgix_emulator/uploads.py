"""Uploads, per the Assets page (docs.imgix.com/apis/management/assets) and
https://docs.imgix.com/getting-started/setup/asset-manager/how-assets-are-added
("Uploading via the Management API", "Uploading with Upload Sessions"), with the presigned
PUT answered as S3 answers one.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.imgix_emulator.account import Account
from localdev.imgix_emulator.assets import Assets, asset_resource
from localdev.imgix_emulator.errors import ApiError, document
from localdev.imgix_emulator.request import Request

# "upload assets under 30MB": read as 30,000,000 bytes, the conservative reading.
DIRECT_UPLOAD_MAX = 30_000_000
SESSION_MAX = 5 * 1024**3
# "The session and presigned URL will stay open for 8 hours ... Unclosed sessions will
# close after 8 hours."
SESSION_LIFETIME_S = 8 * 3600


@dataclass
class UploadSessionState:
    id: str
    source_id: str
    origin_path: str
    token: str
    expires_at: float
    # The presigned URL is signed with the Content-Type the session was created with; S3
    # refuses a PUT whose Content-Type differs from a signed one (SignatureDoesNotMatch).
    content_type: str | None = None
    status: str = "PENDING"
    file: Path | None = None
    size: int = 0
    sha256: str = ""
    polls_after_close: int = 0
    transition: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Uploads:
    def __init__(self, account: Account, assets: Assets, base_url: str) -> None:
        self.account = account
        self.assets = assets
        self.base_url = base_url
        self.sessions: dict[str, UploadSessionState] = {}
        self.uploads: dict[tuple[str, str], Path] = {}
        # Processing after close: polls until COMPLETE (None: never completes). imgix gives
        # no duration; modelled as a number of status polls so tests stay deterministic.
        self.session_polls_to_complete: int | None = 1

    # -- direct upload -------------------------------------------------------------------------
    def upload(self, request: Request) -> tuple[int, Any]:
        """POST sources/:id/upload/:origin_path, raw bytes, under 30MB (Asset Edit);
        ?overwrite=true "overwrite[s] an asset matching the path" (Edit and Purge).
        Undocumented answers, modelled as: an existing file without overwrite 409; a Source
        that does not allow uploads 403; a body of 30MB or more 413."""
        source_id, path = request.params["source_id"], request.params["origin_path"]
        source = self._uploadable(request, source_id)
        if request.length >= DIRECT_UPLOAD_MAX:
            request.drain()
            raise ApiError(
                413, "Payload Too Large", "direct uploads must be under 30MB: use a session"
            )
        overwrite = request.arg("overwrite") == "true"
        if not overwrite and self.assets.exists_at_origin(source, path):
            request.drain()
            raise ApiError(409, "Conflict", f"{path!r} exists; upload with ?overwrite=true")
        target = self.account.store_dir / f"upload-{secrets.token_hex(8)}"
        target.write_bytes(request.body(DIRECT_UPLOAD_MAX))
        content_type = request.header("Content-Type") or "application/octet-stream"
        asset = self.assets.publish(source, source_id, path, target, content_type)
        with self.account.lock:
            self.uploads[(source_id, path)] = target
        return 200, document(asset_resource(asset))

    # -- upload sessions ---------------------------------------------------------------------
    def create_session(self, request: Request) -> tuple[int, Any]:
        """POST sources/:id/upload-sessions/:origin_path (Asset Edit): "Create an upload
        session. One session should be created per uploaded file." The request's
        Content-Type is the file's type (imgix's upload-session demo sends it) and is
        signed into the presigned URL."""
        request.drain()
        source_id = request.params["source_id"]
        self._uploadable(request, source_id)
        session = UploadSessionState(
            id=secrets.token_hex(12),
            source_id=source_id,
            origin_path=request.params["origin_path"],
            token=secrets.token_urlsafe(24),
            expires_at=self.account.clock() + SESSION_LIFETIME_S,
            content_type=request.header("Content-Type"),
        )
        with self.account.lock:
            self.sessions[session.id] = session
        return 200, document(self._resource(session))

    def close_session(self, request: Request) -> tuple[int, Any]:
        """POST sources/:id/upload-sessions/:session_id (Asset Edit): "Close the session
        when the upload is complete"."""
        request.drain()
        session = self._session(request.params)
        with self.account.lock:
            if session.status == "PENDING":
                session.status = "CLOSED"
        return 200, document(self._resource(session))

    def session_status(self, request: Request) -> tuple[int, Any]:
        """GET sources/:id/upload-sessions/:session_id: "Check upload status to follow
        processing states" (PENDING, CLOSED, COMPLETE). Permission undocumented: modelled as
        Asset Edit, as the other session routes. COMPLETE is seen only once the file is
        published to the origin and indexed."""
        session = self._session(request.params)
        # One status request at a time per session: a client's retry after a timeout waits
        # until the first request has finished publishing, and only then reads.
        with session.transition:
            with self.account.lock:
                ready = session.status == "CLOSED" and session.file is not None
                if ready:
                    session.polls_after_close += 1
                    needed = self.session_polls_to_complete
                    ready = needed is not None and session.polls_after_close >= needed
            if ready and session.file is not None:
                source = self.account.source(session.source_id)
                content_type = session.content_type or "application/octet-stream"
                self.assets.publish(
                    source, session.source_id, session.origin_path, session.file, content_type
                )
                with self.account.lock:
                    self.uploads[(session.source_id, session.origin_path)] = session.file
                    session.status = "COMPLETE"
            return 200, document(self._resource(session))

    def presigned_put(self, request: Request) -> tuple[int, Any]:
        """PUT to the presigned URL, answered as S3 answers (S3 API: PutObject, REST error
        responses): 403 AccessDenied past expiry, 403 SignatureDoesNotMatch for a
        Content-Type other than the signed one, 411 without Content-Length, 400
        EntityTooLarge over 5 GB."""
        session_id = request.params["session_id"]
        with self.account.lock:
            session = self.sessions.get(session_id)
        token = request.arg("X-Amz-Signature") or ""
        if session is None or not secrets.compare_digest(token, session.token):
            request.drain()
            return 403, s3_error(
                "SignatureDoesNotMatch", "The request signature we calculated does not match"
            )
        self._expire(session)
        if self.account.clock() > session.expires_at:
            request.drain()
            return 403, s3_error("AccessDenied", "Request has expired")
        if (request.header("Content-Type") or None) != session.content_type:
            request.drain()
            return 403, s3_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        if session.status != "PENDING":
            request.drain()
            return 403, s3_error("AccessDenied", "the upload session is closed")
        if request.header("Content-Length") is None:
            return 411, s3_error("MissingContentLength", "You must provide the Content-Length")
        if request.length > SESSION_MAX:
            request.drain()
            return 400, s3_error("EntityTooLarge", "upload sessions take at most 5 GB")
        return self._receive(request, session)

    # -- helpers -------------------------------------------------------------------------------
    def _receive(self, request: Request, session: UploadSessionState) -> tuple[int, Any]:
        target = self.account.store_dir / f"session-{session.id}"
        request.body_consumed = True
        digest, received, length = hashlib.sha256(), 0, request.length
        with target.open("wb") as out:
            while received < length:
                chunk = request.handler.rfile.read(min(length - received, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if received != length:
            request.handler.close_connection = True
            return 400, s3_error("IncompleteBody", f"got {received} of {length} bytes")
        with self.account.lock:
            session.file, session.size, session.sha256 = target, received, digest.hexdigest()
        return 200, None

    def _uploadable(self, request: Request, source_id: str) -> dict[str, Any]:
        source = self.account.source(source_id)
        if not source["attributes"]["deployment"].get("allows_upload"):
            request.drain()
            raise ApiError(403, "Forbidden", "this Source does not allow uploads")
        return source

    def _session(self, params: dict[str, str]) -> UploadSessionState:
        with self.account.lock:
            session = self.sessions.get(params["session_id"])
        if session is None or session.source_id != params["source_id"]:
            raise ApiError(404, "Not Found", "upload session not found")
        self._expire(session)
        return session

    def _expire(self, session: UploadSessionState) -> None:
        """ "Unclosed sessions will close after 8 hours." """
        with self.account.lock:
            if session.status == "PENDING" and self.account.clock() > session.expires_at:
                session.status = "CLOSED"

    def _resource(self, session: UploadSessionState) -> dict[str, Any]:
        url = f"{self.base_url}/_presigned/{session.id}?X-Amz-Signature={session.token}"
        return {
            "type": "upload-sessions",
            "id": session.id,
            "attributes": {
                "id": session.id,
                "status": session.status,
                "url": url,
                "expires_at": int(session.expires_at),
                "origin_path": "/" + session.origin_path,
            },
        }


class S3Error(dict[str, str]):
    """An S3 error, sent as S3's XML error document."""


def s3_error(code: str, message: str) -> S3Error:
    return S3Error(Code=code, Message=message)
