"""A local imgix Management API: a real HTTP server on loopback for tests and the local run.

Faithful to the reference texts where they speak (JSON:API bodies and errors, Bearer auth,
published rate limits with 429, add needs the file at the origin, refresh reprocesses when
the ETag changed, upload under 30 MB, upload sessions PENDING -> CLOSED -> COMPLETE with a
presigned PUT that lives 8 hours). It records every call and injects latency and faults.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import socket
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

DIRECT_UPLOAD_MAX = 30 * 1024 * 1024
SESSION_MAX = 5 * 1024**3
SESSION_LIFETIME_S = 8 * 3600
# (requests, window seconds) per limit class, as published by imgix.
PUBLISHED_LIMITS: dict[str, tuple[int, float]] = {
    "default": (4, 1.0),
    "refresh": (10, 60.0),
    "upload": (2, 1.0),
    "purge": (10, 1.0),
}
# Faults: "timeout", "reset", or any HTTP status as a string ("429", "503", "403"...).
FAULT_KINDS = ("429", "500", "503", "timeout", "reset")
ALL_PERMISSIONS = frozenset({"sources", "asset_manager", "purge", "upload"})
SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class Origin(Protocol):
    def etag(self, bucket: str, key: str) -> str | None: ...
    def put_file(self, bucket: str, key: str, path: Path, content_type: str) -> str: ...


class S3Origin:
    """The Source's S3 bucket, read and written through boto3 (moto locally)."""

    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def etag(self, bucket: str, key: str) -> str | None:
        try:
            return str(self._s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
        except Exception as exc:  # botocore ClientError 404/NoSuchKey/NoSuchBucket
            if "404" in str(exc) or "Not Found" in str(exc) or "NoSuch" in str(exc):
                return None
            raise

    def put_file(self, bucket: str, key: str, path: Path, content_type: str) -> str:
        self._s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        return self.etag(bucket, key) or ""


@dataclass
class Call:
    method: str
    raw_path: str
    route: str
    source_id: str = ""
    origin_path: str = ""
    status: int = 0
    fault: str = ""
    authorization: bool = False  # did the request carry an Authorization header at all
    at: float = field(default_factory=time.monotonic)


@dataclass
class Asset:
    source_id: str
    origin_path: str
    etag: str
    version: int = 1  # bumped each time imgix reprocesses (new ETag)
    refreshes: int = 0
    # When imgix last fetched the origin for it: add of a new asset, every refresh, upload.
    fetched_at: float = field(default_factory=time.monotonic)


@dataclass
class UploadSessionState:
    id: str
    source_id: str
    origin_path: str
    token: str
    expires_at: float
    status: str = "PENDING"
    file: Path | None = None
    size: int = 0
    sha256: str = ""
    polls_after_close: int = 0
    transition: threading.Lock = field(default_factory=threading.Lock, repr=False)


class FaultPlan:
    """Scripted faults (consumed in order) and random faults at a rate, per route or all."""

    def __init__(self) -> None:
        self._script: deque[tuple[str | None, str | None, str]] = deque()
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._routes: frozenset[str] | None = None
        self._rng = random.Random(0)
        self._lock = threading.Lock()

    def script(
        self, kinds: Iterable[str], route: str | None = None, origin_path: str | None = None
    ) -> None:
        """Queue faults ("ok" lets one request through) for a route and/or one origin path."""
        with self._lock:
            self._script.extend((route, origin_path, kind) for kind in kinds)

    def randomly(
        self,
        rate: float,
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int = 0,
        routes: Iterable[str] | None = None,
    ) -> None:
        with self._lock:
            self._rate, self._kinds, self._rng = rate, tuple(kinds), random.Random(seed)
            self._routes = frozenset(routes) if routes is not None else None

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self._rate = 0.0

    def next(self, route: str, origin_path: str = "") -> str | None:
        with self._lock:
            for index, (wanted, path, kind) in enumerate(self._script):
                if wanted in (None, route) and path in (None, origin_path):
                    del self._script[index]
                    return None if kind == "ok" else kind
            in_scope = self._routes is None or route in self._routes
            if self._rate and in_scope and self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
        return None


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}


class ImgixEmulator:
    def __init__(
        self,
        api_key: str = "emulator-api-key",
        origin: Origin | None = None,
        rate_limits: dict[str, tuple[int, float]] | None = PUBLISHED_LIMITS,
        store_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_keys: dict[str, frozenset[str]] = {api_key: ALL_PERMISSIONS}
        self.origin = origin
        self.rate_limits = dict(rate_limits) if rate_limits else {}
        self.faults = FaultPlan()
        # Canned answers for the "answer:<name>" fault: (status, headers, body bytes).
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.on_request: Callable[[Call], None] | None = None
        self.latency_s = 0.0
        self.timeout_delay_s = 2.0
        self.session_polls_to_complete: int | None = 1  # None: sessions never complete
        self.sources: dict[str, dict[str, Any]] = {}
        self.assets: dict[tuple[str, str], Asset] = {}
        self.purges: list[str] = []
        self.purge_log: list[tuple[float, str]] = []  # (when, URL), for ordering checks
        self.calls: list[Call] = []
        self.sessions: dict[str, UploadSessionState] = {}
        self.uploads: dict[tuple[str, str], Path] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.RLock()
        self._tmp = None if store_dir else tempfile.TemporaryDirectory(prefix="imgix-emulator-")
        self.store_dir = store_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ImgixEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="imgix-emulator"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ImgixEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- set-up and inspection for tests -------------------------------------------------
    def create_source(
        self,
        name: str,
        bucket: str,
        prefix: str | None = None,
        subdomains: Iterable[str] = ("autoadder-demo",),
        allows_upload: bool = True,
        enabled: bool = True,
        deployment_type: str = "s3",
    ) -> str:
        source_id = secrets.token_hex(12)
        with self._lock:
            self.sources[source_id] = {
                "id": source_id,
                "type": "sources",
                "attributes": {
                    "name": name,
                    "enabled": enabled,
                    "deployment_status": "deployed",
                    "date_deployed": int(time.time()),
                    "deployment": {
                        "type": deployment_type,
                        "s3_bucket": bucket,
                        "s3_prefix": prefix,
                        "s3_access_key": "AKIAEMULATOR",
                        "imgix_subdomains": list(subdomains),
                        "allows_upload": allows_upload,
                        "cache_ttl_behavior": "respect_origin",
                        "cache_ttl_value": 31536000,
                        "cache_ttl_error": 300,
                    },
                },
            }
        return source_id

    def create_asset(self, source_id: str, origin_path: str, etag: str) -> None:
        """An asset imgix indexed some other way (a render, the dashboard): test set-up."""
        with self._lock:
            self.assets[(source_id, origin_path)] = Asset(source_id, origin_path, etag)

    def calls_to(self, route: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.route == route]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.purges.clear()
            self.purge_log.clear()

    # -- request handling (called from server threads) -----------------------------------
    def handle(self, handler: _Handler) -> None:
        method = handler.command
        raw_path = urlsplit(handler.path).path
        query = parse_qs(urlsplit(handler.path).query)
        segments = raw_path.split("/")[1:]
        call = Call(
            method, handler.path, "unknown", authorization="Authorization" in handler.headers
        )
        self._record(call)  # on arrival, so that calls are in arrival order
        try:
            route, params = _route(method, segments)
            call.route = route
            call.source_id = params.get("source_id", "")
            call.origin_path = params.get("origin_path", "")
            if route == "presigned_put":
                fault = self.faults.next(route)
                call.fault = fault or ""
                if fault:
                    if fault != "reset":
                        self._drain(handler)
                    self._fault(handler, call, fault)
                    return
                status, body = self._presigned_put(handler, params["session_id"], query)
                self._respond(handler, call, status, body)
                return
            if self.on_request is not None:
                self.on_request(call)  # a test's hook: change the world as a request arrives
            permission = self._authenticate(handler)
            self._rate_limit(handler, route)
            fault = self.faults.next(route, call.origin_path)
            call.fault = fault or ""
            if fault and fault != "timeout":
                if fault != "reset":
                    self._drain(handler)
                self._fault(handler, call, fault)
                return
            _require(permission, _PERMISSION_FOR.get(route, "asset_manager"))
            status, body = getattr(self, f"_{route}")(handler, params, query)
            if self.latency_s:
                time.sleep(self.latency_s)
            if fault == "timeout":  # processed, but the answer comes too late
                time.sleep(self.timeout_delay_s)
            self._respond(handler, call, status, body)
        except ApiError as err:
            self._drain(handler)
            body = {
                "errors": [{"status": str(err.status), "title": err.title, "detail": err.detail}]
            }
            self._respond(handler, call, err.status, body, err.headers)

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _respond(
        self,
        handler: _Handler,
        call: Call,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        call.status = status
        payload = json.dumps(body).encode() if body is not None else b""
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/vnd.api+json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _fault(self, handler: _Handler, call: Call, fault: str) -> None:
        if fault.startswith("answer:"):
            # A canned answer, byte for byte: how a test shows the client what a proxy, a
            # truncated body or an unexpected imgix document looks like.
            status, headers, payload = self.answers[fault.removeprefix("answer:")]
            call.status = status
            handler.send_response(status)
            for name, value in {"Content-Length": str(len(payload)), **headers}.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if fault == "reset":
            call.status = 0
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
            handler.connection.close()
            return
        if fault == "timeout":
            time.sleep(self.timeout_delay_s)
            status = 504
        else:
            status = int(fault)
        headers = {"Retry-After": "1"} if status == 429 else {}
        body = {
            "errors": [
                {
                    "status": str(status),
                    "title": "Injected fault",
                    "detail": f"emulator injected {fault}",
                }
            ]
        }
        self._respond(handler, call, status, body, headers)

    @staticmethod
    def _drain(handler: _Handler) -> None:
        """Read and drop an unread body, so that the keep-alive connection stays in step."""
        if handler.body_consumed:
            return
        handler.body_consumed = True
        length = int(handler.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = handler.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    @staticmethod
    def _body(handler: _Handler, limit: int = 1 << 20) -> bytes:
        length = int(handler.headers.get("Content-Length") or 0)
        if length > limit:
            raise ApiError(413, "Payload Too Large", f"body of {length} bytes exceeds {limit}")
        handler.body_consumed = True
        return handler.rfile.read(length) if length else b""

    def _json_body(self, handler: _Handler) -> dict[str, Any]:
        raw = self._body(handler)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "Bad Request", f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request", "body must be a JSON object")
        return body

    def _authenticate(self, handler: _Handler) -> frozenset[str]:
        header = handler.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError(401, "Unauthorized", "missing Bearer API key")
        permissions = self.api_keys.get(header[len("Bearer ") :])
        if permissions is None:
            raise ApiError(401, "Unauthorized", "invalid API key")
        return permissions

    def _rate_limit(self, handler: _Handler, route: str) -> None:
        limit_class = _LIMIT_CLASS.get(route, "default")
        if limit_class not in self.rate_limits:
            return
        limit, window = self.rate_limits[limit_class]
        key = (handler.headers.get("Authorization", ""), limit_class)
        now = time.monotonic()
        with self._lock:
            stamps = self._windows.setdefault(key, deque())
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= limit:
                retry_after = max(1, math.ceil(stamps[0] + window - now))
                raise ApiError(
                    429,
                    "Too Many Requests",
                    f"rate limit of {limit} per {window:g}s exceeded for {limit_class}",
                    {"Retry-After": str(retry_after)},
                )
            stamps.append(now)

    def _source(self, source_id: str) -> dict[str, Any]:
        source = self.sources.get(source_id)
        if source is None:
            raise ApiError(404, "Not Found", f"Source {source_id} not found")
        return source

    @staticmethod
    def _origin_key(source: dict[str, Any], origin_path: str) -> tuple[str, str]:
        deployment = source["attributes"]["deployment"]
        prefix = (deployment.get("s3_prefix") or "").strip("/")
        return deployment["s3_bucket"], f"{prefix}/{origin_path}" if prefix else origin_path

    def _origin_etag(self, source: dict[str, Any], origin_path: str) -> str:
        if self.origin is None:
            return hashlib.md5(origin_path.encode(), usedforsecurity=False).hexdigest()
        etag = self.origin.etag(*self._origin_key(source, origin_path))
        if etag is None:
            raise ApiError(
                404, "Not Found", f"asset {origin_path!r} was not found at the Source's origin"
            )
        return etag

    @staticmethod
    def _asset_doc(asset: Asset) -> dict[str, Any]:
        return {
            "data": {
                "type": "assets",
                "id": f"{asset.source_id}/{asset.origin_path}",
                "attributes": {
                    "origin_path": "/" + asset.origin_path,
                    "etag": asset.etag,
                    "version": asset.version,
                },
            }
        }

    # -- routes ----------------------------------------------------------------------------
    def _list_sources(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        wanted = query.get("filter[deployment.type]", [None])[0]
        with self._lock:
            data = [
                _public(s)
                for s in self.sources.values()
                if wanted is None or s["attributes"]["deployment"]["type"] == wanted
            ]
        return 200, {"data": data, "jsonapi": {"version": "1.0"}, "meta": {}}

    def _get_source(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        return 200, {
            "data": _public(self._source(params["source_id"])),
            "jsonapi": {"version": "1.0"},
        }

    def _patch_source(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        source = self._source(params["source_id"])
        body = self._json_body(handler)
        data = body.get("data")
        if not isinstance(data, dict) or data.get("type") != "sources":
            raise ApiError(400, "Bad Request", "body must be {data: {type: 'sources', ...}}")
        if data.get("id") not in (None, params["source_id"]):
            raise ApiError(409, "Conflict", "data.id does not match the URL")
        attributes = data.get("attributes") or {}
        deployment = dict(source["attributes"]["deployment"])
        deployment.update(attributes.get("deployment") or {})
        _validate_deployment(deployment)
        with self._lock:
            for name in ("name", "enabled"):
                if name in attributes:
                    source["attributes"][name] = attributes[name]
            source["attributes"]["deployment"] = deployment
            source["attributes"]["deployment_status"] = "deploying"
        return 200, {"data": _public(source), "jsonapi": {"version": "1.0"}}

    def _add_asset(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        self._drain(handler)
        source_id, path = params["source_id"], params["origin_path"]
        etag = self._origin_etag(self._source(source_id), path)
        with self._lock:
            asset = self.assets.setdefault((source_id, path), Asset(source_id, path, etag))
        return 200, self._asset_doc(asset)

    def _refresh_asset(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        self._drain(handler)
        source_id, path = params["source_id"], params["origin_path"]
        source = self._source(source_id)
        etag = self._origin_etag(source, path)
        with self._lock:
            asset = self.assets.get((source_id, path))
            if asset is None:
                asset = self.assets[(source_id, path)] = Asset(source_id, path, etag)
            elif asset.etag != etag:
                asset.etag, asset.version = etag, asset.version + 1
            asset.refreshes += 1
            asset.fetched_at = time.monotonic()  # refresh always refetches (Assets: refresh)
        return 200, self._asset_doc(asset)

    def _get_asset(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        with self._lock:
            asset = self.assets.get((params["source_id"], params["origin_path"]))
        if asset is None:
            raise ApiError(404, "Not Found", "asset not found")
        return 200, self._asset_doc(asset)

    def _purge(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        body = self._json_body(handler)
        data = body.get("data") or {}
        url = (data.get("attributes") or {}).get("url") if isinstance(data, dict) else None
        if data.get("type") != "purges" or not isinstance(url, str):
            raise ApiError(
                400, "Bad Request", "body must be {data: {type: 'purges', attributes: {url}}}"
            )
        host = urlsplit(url).hostname or ""
        with self._lock:
            known = {
                f"{sub}.imgix.net"
                for s in self.sources.values()
                for sub in s["attributes"]["deployment"].get("imgix_subdomains", [])
            }
        if host not in known:
            raise ApiError(422, "Unprocessable Entity", f"{host!r} is not a domain of this account")
        with self._lock:
            self.purges.append(url)
            self.purge_log.append((time.monotonic(), url))
        return 200, {
            "data": {"type": "purges", "id": secrets.token_hex(12), "attributes": {"url": url}}
        }

    def _upload(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        source_id, path = params["source_id"], params["origin_path"]
        source = self._source(source_id)
        if not source["attributes"]["deployment"].get("allows_upload"):
            self._drain(handler)
            raise ApiError(403, "Forbidden", "this Source does not allow uploads")
        length = int(handler.headers.get("Content-Length") or 0)
        if length >= DIRECT_UPLOAD_MAX:
            self._drain(handler)
            raise ApiError(
                413,
                "Payload Too Large",
                "direct uploads must be under 30 MB; use an upload session",
            )
        target = self.store_dir / f"upload-{secrets.token_hex(8)}"
        target.write_bytes(self._body(handler, DIRECT_UPLOAD_MAX))
        self._publish(
            source,
            source_id,
            path,
            target,
            handler.headers.get("Content-Type") or "application/octet-stream",
        )
        with self._lock:
            asset = self.assets[(source_id, path)]
        return 200, self._asset_doc(asset)

    def _publish(
        self, source: dict[str, Any], source_id: str, path: str, file: Path, content_type: str
    ) -> None:
        """imgix writes the upload to the Source's storage, then indexes it."""
        etag = (
            hashlib.md5(file.read_bytes(), usedforsecurity=False).hexdigest()
            if file.stat().st_size < DIRECT_UPLOAD_MAX
            else "session"
        )
        if self.origin is not None:
            etag = self.origin.put_file(*self._origin_key(source, path), file, content_type)
        with self._lock:
            self.uploads[(source_id, path)] = file
            asset = self.assets.get((source_id, path))
            if asset is None:
                self.assets[(source_id, path)] = Asset(source_id, path, etag)
            else:
                if asset.etag != etag:
                    asset.etag, asset.version = etag, asset.version + 1
                asset.fetched_at = time.monotonic()

    def _create_session(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        self._drain(handler)
        source_id = params["source_id"]
        source = self._source(source_id)
        if not source["attributes"]["deployment"].get("allows_upload"):
            raise ApiError(403, "Forbidden", "this Source does not allow uploads")
        session = UploadSessionState(
            id=secrets.token_hex(12),
            source_id=source_id,
            origin_path=params["origin_path"],
            token=secrets.token_urlsafe(24),
            expires_at=time.time() + SESSION_LIFETIME_S,
        )
        with self._lock:
            self.sessions[session.id] = session
        return 200, self._session_doc(session)

    def _session_doc(self, session: UploadSessionState) -> dict[str, Any]:
        url = f"{self.base_url}/_presigned/{session.id}?X-Amz-Signature={session.token}"
        return {
            "data": {
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
        }

    def _session_for(self, params: dict[str, str]) -> UploadSessionState:
        with self._lock:
            session = self.sessions.get(params["session_id"])
        if session is None or session.source_id != params["source_id"]:
            raise ApiError(404, "Not Found", "upload session not found")
        return session

    def _close_session(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        self._drain(handler)
        session = self._session_for(params)
        with self._lock:
            if session.status == "PENDING":
                session.status = "CLOSED"
        return 200, self._session_doc(session)

    def _session_status(
        self, handler: _Handler, params: dict[str, str], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        session = self._session_for(params)
        # One status request at a time per session: a second poll (a client's retry after
        # a timeout) waits until the first has finished publishing, and only then reads.
        with session.transition:
            with self._lock:
                ready = session.status == "CLOSED" and session.file is not None
                if ready:
                    session.polls_after_close += 1
                    needed = self.session_polls_to_complete
                    ready = needed is not None and session.polls_after_close >= needed
            if ready and session.file is not None:
                # imgix reports COMPLETE once the asset is processed: publish (write to the
                # origin, index) first, and only then let COMPLETE be seen.
                source = self._source(session.source_id)
                self._publish(
                    source,
                    session.source_id,
                    session.origin_path,
                    session.file,
                    "application/octet-stream",
                )
                with self._lock:
                    session.status = "COMPLETE"
            return 200, self._session_doc(session)

    def _presigned_put(
        self, handler: _Handler, session_id: str, query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        with self._lock:
            session = self.sessions.get(session_id)
        token = query.get("X-Amz-Signature", [""])[0]
        if session is None or not secrets.compare_digest(token, session.token):
            self._drain(handler)
            return 403, {
                "errors": [
                    {"status": "403", "title": "Forbidden", "detail": "signature does not match"}
                ]
            }
        if time.time() > session.expires_at or session.status != "PENDING":
            self._drain(handler)
            return 403, {
                "errors": [
                    {
                        "status": "403",
                        "title": "Forbidden",
                        "detail": "request has expired or session is closed",
                    }
                ]
            }
        if handler.headers.get("Content-Length") is None:
            return 411, {
                "errors": [
                    {
                        "status": "411",
                        "title": "Length Required",
                        "detail": "Content-Length is required",
                    }
                ]
            }
        length = int(handler.headers["Content-Length"])
        if length > SESSION_MAX:
            self._drain(handler)
            return 400, {
                "errors": [
                    {
                        "status": "400",
                        "title": "EntityTooLarge",
                        "detail": "upload sessions take at most 5 GB",
                    }
                ]
            }
        target = self.store_dir / f"session-{session_id}"
        handler.body_consumed = True
        digest, received = hashlib.sha256(), 0
        with target.open("wb") as out:
            while received < length:
                chunk = handler.rfile.read(min(length - received, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if received != length:
            handler.close_connection = True
            return 400, {
                "errors": [
                    {
                        "status": "400",
                        "title": "IncompleteBody",
                        "detail": f"got {received} of {length} bytes",
                    }
                ]
            }
        with self._lock:
            session.file, session.size, session.sha256 = target, received, digest.hexdigest()
        return 200, None


_LIMIT_CLASS = {"refresh_asset": "refresh", "upload": "upload", "purge": "purge"}
_PERMISSION_FOR = {
    "list_sources": "sources",
    "get_source": "sources",
    "patch_source": "sources",
    "purge": "purge",
    "upload": "upload",
    "create_session": "upload",
    "close_session": "upload",
    "session_status": "upload",
}
_SESSION_ID = re.compile(r"^[0-9a-f]{24}$")


def _route(method: str, segments: list[str]) -> tuple[str, dict[str, str]]:
    """Match the raw path segment by segment; an origin path's segments are decoded only here."""

    def tail(start: int) -> str:
        return "/".join(unquote(s) for s in segments[start:])

    if len(segments) == 2 and segments[0] == "_presigned" and method == "PUT":
        return "presigned_put", {"session_id": unquote(segments[1])}
    if segments[:2] != ["api", "v1"]:
        raise ApiError(404, "Not Found", "no such endpoint")
    rest = segments[2:]
    if rest == ["purge"] and method == "POST":
        return "purge", {}
    if rest == ["sources"] and method == "GET":
        return "list_sources", {}
    if len(rest) >= 2 and rest[0] == "sources":
        source_id = unquote(rest[1])
        if len(rest) == 2:
            if method == "GET":
                return "get_source", {"source_id": source_id}
            if method == "PATCH":
                return "patch_source", {"source_id": source_id}
        elif (
            len(rest) >= 5
            and rest[2] == "assets"
            and method == "POST"
            and rest[3] in ("add", "refresh")
        ):
            return f"{rest[3]}_asset", {"source_id": source_id, "origin_path": tail(6)}
        elif len(rest) >= 4 and rest[2] == "assets" and method == "GET":
            # Management API, Assets: "sources/:source_id/assets/:origin_path" (GET).
            return "get_asset", {"source_id": source_id, "origin_path": tail(5)}
        elif len(rest) >= 4 and rest[2] == "upload" and method == "POST":
            return "upload", {"source_id": source_id, "origin_path": tail(5)}
        elif len(rest) >= 4 and rest[2] == "upload-sessions":
            one = unquote(rest[3]) if len(rest) == 4 else None
            if method == "GET" and one is not None:
                return "session_status", {"source_id": source_id, "session_id": one}
            if method == "POST" and one is not None and _SESSION_ID.match(one):
                return "close_session", {"source_id": source_id, "session_id": one}
            if method == "POST":
                return "create_session", {"source_id": source_id, "origin_path": tail(5)}
    raise ApiError(404, "Not Found", f"no route for {method} /{'/'.join(segments)}")


def _require(permissions: frozenset[str], needed: str) -> None:
    if needed not in permissions:
        raise ApiError(403, "Forbidden", f"API key lacks the {needed!r} permission")


def _public(source: dict[str, Any]) -> dict[str, Any]:
    """A Source as GET returns it: secrets are never sent back."""
    copy = json.loads(json.dumps(source))
    copy["attributes"]["deployment"].pop("s3_secret_key", None)
    return dict(copy)


def _validate_deployment(deployment: dict[str, Any]) -> None:
    problems = []
    if deployment.get("type") not in (
        "azure",
        "gcs",
        "s3",
        "webfolder",
        "webproxy",
        "s3_compatible",
    ):
        problems.append(f"type {deployment.get('type')!r} is not a Source type")
    subdomains = deployment.get("imgix_subdomains")
    if not isinstance(subdomains, list) or not subdomains:
        problems.append("imgix_subdomains needs at least one subdomain")
    elif not all(isinstance(s, str) and SUBDOMAIN.match(s) for s in subdomains):
        problems.append("imgix_subdomains holds an invalid subdomain")
    ttl = deployment.get("cache_ttl_value", 31536000)
    if not isinstance(ttl, int) or not 1800 <= ttl <= 31536000:
        problems.append("cache_ttl_value must be between 1800 and 31536000")
    ttl_error = deployment.get("cache_ttl_error", 300)
    if not isinstance(ttl_error, int) or not 1 <= ttl_error <= 31536000:
        problems.append("cache_ttl_error must be between 1 and 31536000")
    if deployment.get("type") == "s3" and not deployment.get("s3_bucket"):
        problems.append("s3_bucket is required for s3 Sources")
    if problems:
        raise ApiError(422, "Unprocessable Entity", "; ".join(problems))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: ImgixEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled session expects
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm meets
    # the client's delayed ACK and every response stalls ~40 ms.
    disable_nagle_algorithm = True
    server: _Server
    body_consumed = False

    def _dispatch(self) -> None:
        self.body_consumed = False
        try:
            self.server.emulator.handle(self)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass
