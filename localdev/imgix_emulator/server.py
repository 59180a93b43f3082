"""The emulator's HTTP side: one loopback server, the route table, faults and the record
of every call. Each route names the module (and so the imgix page) it follows."""

from __future__ import annotations

import json
import re
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from localdev.imgix_emulator.account import Account, Asset
from localdev.imgix_emulator.assets import Assets
from localdev.imgix_emulator.errors import (
    ALL_PERMISSIONS,
    ASSET_BROWSE,
    ASSET_EDIT,
    PURGE,
    SOURCES,
    ApiError,
    authenticate,
    error_document,
    require,
)
from localdev.imgix_emulator.faults import FaultPlan
from localdev.imgix_emulator.limits import PUBLISHED_LIMITS, RateLimits
from localdev.imgix_emulator.network import Network
from localdev.imgix_emulator.origin import Origin
from localdev.imgix_emulator.purges import Purges
from localdev.imgix_emulator.request import Request
from localdev.imgix_emulator.sources import Sources
from localdev.imgix_emulator.uploads import S3Error, Uploads, UploadSessionState

# The Management API's base path (Overview: "https://api.imgix.com/", "api/v1/...").
API = "/api/v1"
SOURCE = API + "/sources/(?P<source_id>[^/]+)"
TAIL = "(?P<origin_path>.+)"


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    pattern: re.Pattern[str]
    permissions: tuple[str, ...]
    limit_class: str = "default"


def _route(name: str, method: str, pattern: str, *needs: str, limit: str = "default") -> Route:
    return Route(name, method, re.compile(f"^{pattern}$"), needs, limit)


# Permissions: Sources page ("All Source operations require the Sources permission"),
# Assets page (its table's "Required Permissions"), Purges page. Limit classes: limits.py.
ROUTES = (
    _route("list_sources", "GET", API + "/sources", SOURCES),
    _route("create_source", "POST", API + "/sources", SOURCES, limit="create_source"),
    _route("get_source", "GET", SOURCE, SOURCES),
    _route("patch_source", "PATCH", SOURCE, SOURCES, limit="update_source"),
    _route("list_assets", "GET", SOURCE + "/assets", ASSET_BROWSE),
    _route("add_asset", "POST", SOURCE + "/assets/add/" + TAIL, ASSET_EDIT),
    _route("refresh_asset", "POST", SOURCE + "/assets/refresh/" + TAIL, ASSET_EDIT, PURGE,
           limit="refresh"),
    _route("get_asset", "GET", SOURCE + "/assets/" + TAIL, ASSET_BROWSE, limit="get_asset"),
    _route("patch_asset", "PATCH", SOURCE + "/assets/" + TAIL, ASSET_EDIT),
    _route("upload", "POST", SOURCE + "/upload/" + TAIL, ASSET_EDIT, limit="upload"),
    _route("close_session", "POST", SOURCE + "/upload-sessions/(?P<session_id>[0-9a-f]{24})",
           ASSET_EDIT),
    _route("session_status", "GET", SOURCE + "/upload-sessions/(?P<session_id>[^/]+)",
           ASSET_EDIT),
    _route("create_session", "POST", SOURCE + "/upload-sessions/" + TAIL, ASSET_EDIT),
    _route("purge", "POST", API + "/purge", PURGE, limit="purge"),
    # Not imgix: S3's presigned URL, as a session's `url` points at it.
    _route("presigned_put", "PUT", "/_presigned/(?P<session_id>[^/]+)"),
)  # fmt: skip


def match(method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """The route for a request; 404 for an unknown path, 405 for a known path and a method
    it does not take (Overview, Errors: "405 Method not allowed")."""
    allowed = []
    for route in ROUTES:
        found = route.pattern.match(raw_path)
        if found is None:
            continue
        if route.method != method:
            allowed.append(route.method)
            continue
        params = {
            # An origin path's segments are decoded one by one: %2F stays inside a segment.
            name: "/".join(unquote(s) for s in value.split("/"))
            for name, value in found.groupdict().items()
        }
        return route, params
    if allowed:
        raise ApiError(
            405,
            "Method Not Allowed",
            f"{method} is not allowed on {raw_path}",
            {"Allow": ", ".join(sorted(set(allowed)))},
        )
    raise ApiError(404, "Not Found", f"no route for {method} {raw_path}")


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
        self._tmp = None if store_dir else tempfile.TemporaryDirectory(prefix="imgix-emulator-")
        self.account = Account(origin, store_dir or Path(self._tmp.name))  # type: ignore[union-attr]
        self.limits = RateLimits(rate_limits)
        self.faults = FaultPlan()
        # Canned answers for the "answer:<name>" fault: (status, headers, body bytes).
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.on_request: Callable[[Call], None] | None = None
        self.latency_s = 0.0
        self.network: Network | None = None  # arrival delays (the bench's jitter cases)
        self.timeout_delay_s = 2.0
        self.calls: list[Call] = []
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None
        self.source_api = Sources(self.account)
        self.asset_api = Assets(self.account)
        self.upload_api = Uploads(self.account, self.asset_api, self.base_url)
        self.purge_api = Purges(self.source_api)
        self._handlers: dict[str, Callable[[Request], tuple[int, Any]]] = {
            "list_sources": self.source_api.index,
            "create_source": self.source_api.create,
            "get_source": self.source_api.get,
            "patch_source": self.source_api.patch,
            "list_assets": self.asset_api.index,
            "add_asset": self.asset_api.add,
            "refresh_asset": self.asset_api.refresh,
            "get_asset": self.asset_api.get,
            "patch_asset": self.asset_api.patch,
            "upload": self.upload_api.upload,
            "create_session": self.upload_api.create_session,
            "close_session": self.upload_api.close_session,
            "session_status": self.upload_api.session_status,
            "purge": self.purge_api.purge,
            "presigned_put": self.upload_api.presigned_put,
        }

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ImgixEmulator:
        # shutdown() waits for the loop's next poll: 0.5 s by default, at every test's end.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
            name="imgix-emulator",
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

    # -- what tests set and read -------------------------------------------------------------
    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        return self.account.sources

    @property
    def assets(self) -> dict[tuple[str, str], Asset]:
        return self.account.assets

    @property
    def sessions(self) -> dict[str, UploadSessionState]:
        return self.upload_api.sessions

    @property
    def uploads(self) -> dict[tuple[str, str], Path]:
        return self.upload_api.uploads

    @property
    def purges(self) -> list[str]:
        return self.purge_api.purges

    @property
    def purge_log(self) -> list[tuple[float, str]]:
        return self.purge_api.purge_log

    @property
    def rate_limits(self) -> dict[str, tuple[int, float]]:
        return self.limits.limits

    @rate_limits.setter
    def rate_limits(self, limits: dict[str, tuple[int, float]]) -> None:
        self.limits.limits = dict(limits)

    @property
    def session_polls_to_complete(self) -> int | None:
        return self.upload_api.session_polls_to_complete

    @session_polls_to_complete.setter
    def session_polls_to_complete(self, polls: int | None) -> None:
        self.upload_api.session_polls_to_complete = polls

    @property
    def clock(self) -> Callable[[], float]:
        return self.account.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.account.clock = clock

    def create_source(
        self,
        name: str,
        bucket: str,
        prefix: str | None = None,
        subdomains: Iterable[str] = ("autoadder-demo",),
        allows_upload: bool = True,
        enabled: bool = True,
        custom_domains: Iterable[str] = (),
        deployment_type: str = "s3",
    ) -> str:
        """A Source that already exists in the account (set up in the dashboard): an S3
        one, or a minimal valid Source of another type."""
        if deployment_type != "s3":
            other = {
                "type": deployment_type,
                "imgix_subdomains": list(subdomains),
                "webfolder_base_url": "https://images.example.com/",
            }
            return self.source_api.seed(name, other, enabled)
        deployment = {
            "type": "s3",
            "s3_bucket": bucket,
            "s3_prefix": prefix,
            "s3_access_key": "AKIAEMULATOR",
            "s3_secret_key": "emulator-secret",
            "imgix_subdomains": list(subdomains),
            "custom_domains": list(custom_domains),
            "allows_upload": allows_upload,
        }
        return self.source_api.seed(name, deployment, enabled)

    def create_asset(self, source_id: str, origin_path: str, etag: str) -> None:
        self.asset_api.seed(source_id, origin_path, etag)

    def settle(self) -> int:
        """Let imgix's add queue run (Assets: add "queue[s]" the path)."""
        return self.asset_api.settle()

    def calls_to(self, route: str) -> list[Call]:
        with self.account.lock:
            return [c for c in self.calls if c.route == route]

    def reset_calls(self) -> None:
        with self.account.lock:
            self.calls.clear()
            self.purges.clear()
            self.purge_log.clear()

    # -- request handling (called from server threads) -----------------------------------
    def handle(self, handler: _Handler) -> None:
        if self.network is not None:
            time.sleep(self.network.delay_s(first_on_connection=handler.served == 0))
        handler.served += 1
        parts = urlsplit(handler.path)
        call = Call(
            handler.command,
            handler.path,
            "unknown",
            authorization="Authorization" in handler.headers,
        )
        with self.account.lock:
            self.calls.append(call)  # on arrival, so that calls are in arrival order
        request = Request(handler, handler.command, query=parse_qs(parts.query))
        try:
            route, request.params = match(handler.command, parts.path)
            call.route = route.name
            call.source_id = request.params.get("source_id", "")
            call.origin_path = request.params.get("origin_path", "")
            granted = frozenset[str]()
            if route.name != "presigned_put":
                granted = self._admit(request, route, call)
            fault = self.faults.next(route.name, call.origin_path)
            call.fault = fault or ""
            if fault and fault != "timeout":
                if fault != "reset":
                    request.drain()
                self._fault(handler, call, fault)
                return
            if route.name != "presigned_put":
                needs = route.permissions
                if route.name == "upload" and request.arg("overwrite") == "true":
                    needs = (*needs, PURGE)  # Assets: "?overwrite=true ... Edit, Asset Purge"
                require(granted, needs)
            status, body = self._handlers[route.name](request)
            if self.latency_s:
                time.sleep(self.latency_s)
            if fault == "timeout":  # processed, but the answer comes too late
                time.sleep(self.timeout_delay_s)
            self._respond(handler, call, status, body)
        except ApiError as err:
            request.drain()
            body = error_document(err.status, err.title, err.detail)
            self._respond(handler, call, err.status, body, err.headers)

    def _admit(self, request: Request, route: Route, call: Call) -> frozenset[str]:
        """Authenticate (Overview) and count against the rate limit (limits.py)."""
        if self.on_request is not None:
            self.on_request(call)  # a test's hook: change the world as a request arrives
        granted = authenticate(request.header("Authorization"), self.api_keys)
        self.limits.take(route.limit_class)
        return granted

    def _respond(
        self,
        handler: _Handler,
        call: Call,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        call.status = status
        content_type = "application/vnd.api+json"
        if isinstance(body, S3Error):
            content_type = "application/xml"
            payload = (
                f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{escape(body['Code'])}"
                f"</Code><Message>{escape(body['Message'])}</Message></Error>"
            ).encode()
        else:
            payload = json.dumps(body).encode() if body is not None else b""
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
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
        status = int(fault)
        headers = {}
        if status == 429 and self.limits.retry_after_header:
            headers["Retry-After"] = "1"
        body = error_document(status, "Injected fault", f"emulator injected {fault}")
        self._respond(handler, call, status, body, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Bursts of new connections (many Lambda environments at once) must not wait on a
    # listen backlog of 5, Python's default: that adds ~1 s stalls no imgix shows.
    request_queue_size = 128
    emulator: ImgixEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled session expects
    served = 0  # requests on this connection (one handler per connection)
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm meets
    # the client's delayed ACK and every response stalls ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def _dispatch(self) -> None:
        try:
            self.server.emulator.handle(self)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass
