"""The one imgix Management API client (JSON:API over a pooled requests session)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from imgix_autoadder.pacing import RateLimiter

JSONAPI = "application/vnd.api+json"
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class ImgixError(Exception):
    """An imgix API failure, carrying imgix's own errors[].detail where it sent one."""

    status: int
    title: str
    detail: str
    operation: str

    def __str__(self) -> str:
        return f"imgix {self.operation} failed: HTTP {self.status} {self.title}: {self.detail}"

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES or self.status == 0


class ImgixNotFound(ImgixError):
    """404: the Source, asset or session does not exist (or the origin lacks the file)."""


class ImgixTransportError(ImgixError):
    """No HTTP answer at all (connection reset, timeout) after every retry."""


def encode_origin_path(origin_path: str) -> str:
    """Percent-encode each segment so that no key can address another endpoint.

    '/' separates segments and is kept; everything else reserved is encoded, and the dot
    segments '.' and '..' are encoded too, since HTTP clients collapse them literally.
    """

    def segment(part: str) -> str:
        if part in (".", ".."):
            return part.replace(".", "%2E")
        return quote(part, safe="")

    return "/".join(segment(part) for part in origin_path.split("/"))


@dataclass(frozen=True)
class UploadSession:
    id: str
    status: str
    url: str


@dataclass
class Pacers:
    """One limiter per published imgix limit (refresh, upload, purge, and the default)."""

    default: RateLimiter
    refresh: RateLimiter
    upload: RateLimiter
    purge: RateLimiter

    @classmethod
    def unlimited(cls) -> Pacers:
        return cls(RateLimiter(0), RateLimiter(0), RateLimiter(0), RateLimiter(0))

    @classmethod
    def per_second(
        cls, default: float, refresh_per_minute: float, upload: float, purge: float
    ) -> Pacers:
        return cls(
            RateLimiter(default),
            RateLimiter(refresh_per_minute / 60.0),
            RateLimiter(upload),
            RateLimiter(purge),
        )


@dataclass
class ImgixClient:
    api_key: str = field(repr=False)
    base_url: str = "https://api.imgix.com"
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 15.0
    max_retries: int = 5
    backoff_factor_s: float = 0.5
    retry_after_max_s: int = 20
    pool_size: int = 10
    pacers: Pacers = field(default_factory=Pacers.unlimited)
    session: requests.Session = field(init=False, repr=False)

    def __post_init__(self) -> None:
        retry = Retry(
            total=self.max_retries,
            connect=self.max_retries,
            read=self.max_retries,
            status=self.max_retries,
            other=0,
            status_forcelist=TRANSIENT_STATUSES,
            # add, refresh, purge and upload are idempotent at imgix, so POST is retried too.
            allowed_methods=None,
            backoff_factor=self.backoff_factor_s,
            backoff_jitter=self.backoff_factor_s,
            backoff_max=30,
            respect_retry_after_header=True,
            retry_after_max=self.retry_after_max_s,
            raise_on_status=False,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(
            max_retries=retry, pool_connections=self.pool_size, pool_maxsize=self.pool_size
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"Authorization": f"Bearer {self.api_key}", "Accept": JSONAPI})
        # A key that reaches another host on a redirect would be a leak: never follow.
        self.session.max_redirects = 0

    # -- Sources -------------------------------------------------------------------------
    def list_sources(self, deployment_type: str | None = None) -> list[dict[str, Any]]:
        params = {"filter[deployment.type]": deployment_type} if deployment_type else None
        body = self._json("GET", "/api/v1/sources", "list sources", params=params)
        sources: list[dict[str, Any]] = body["data"]
        return sources

    def get_source(self, source_id: str) -> dict[str, Any]:
        source: dict[str, Any] = self._json(
            "GET", f"/api/v1/sources/{quote(source_id, safe='')}", "get source"
        )["data"]
        return source

    def update_source(self, source_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        body = {"data": {"id": source_id, "type": "sources", "attributes": attributes}}
        source: dict[str, Any] = self._json(
            "PATCH", f"/api/v1/sources/{quote(source_id, safe='')}", "update source", json=body
        )["data"]
        return source

    # -- Assets --------------------------------------------------------------------------
    def add_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"{self._source(source_id)}/assets/add/{encode_origin_path(origin_path)}"
        return self._json("POST", path, "add asset", json={})

    def refresh_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"{self._source(source_id)}/assets/refresh/{encode_origin_path(origin_path)}"
        return self._json("POST", path, "refresh asset", json={}, pacer=self.pacers.refresh)

    def get_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"/api/v1/assets/{quote(source_id, safe='')}/{encode_origin_path(origin_path)}"
        asset: dict[str, Any] = self._json("GET", path, "get asset")["data"]
        return asset

    def purge(self, url: str) -> dict[str, Any]:
        body = {"data": {"type": "purges", "attributes": {"url": url}}}
        return self._json("POST", "/api/v1/purge", "purge", json=body, pacer=self.pacers.purge)

    # -- Uploads -------------------------------------------------------------------------
    def upload(
        self, source_id: str, origin_path: str, body: bytes, content_type: str
    ) -> dict[str, Any]:
        path = f"{self._source(source_id)}/upload/{encode_origin_path(origin_path)}"
        return self._json(
            "POST",
            path,
            "upload",
            data=body,
            headers={"Content-Type": content_type},
            pacer=self.pacers.upload,
        )

    def create_upload_session(self, source_id: str, origin_path: str) -> UploadSession:
        path = f"{self._source(source_id)}/upload-sessions/{encode_origin_path(origin_path)}"
        return self._session("POST", path, "create upload session", json={})

    def close_upload_session(self, source_id: str, session_id: str) -> UploadSession:
        path = f"{self._source(source_id)}/upload-sessions/{quote(session_id, safe='')}"
        return self._session("POST", path, "close upload session", json={})

    def get_upload_session(self, source_id: str, session_id: str) -> UploadSession:
        path = f"{self._source(source_id)}/upload-sessions/{quote(session_id, safe='')}"
        return self._session("GET", path, "upload session status")

    # -- plumbing ------------------------------------------------------------------------
    @staticmethod
    def _source(source_id: str) -> str:
        return f"/api/v1/sources/{quote(source_id, safe='')}"

    def _session(self, method: str, path: str, operation: str, **kw: Any) -> UploadSession:
        data = self._json(method, path, operation, **kw)["data"]
        attributes = data.get("attributes", {})
        return UploadSession(
            id=str(data.get("id") or attributes.get("id")),
            status=str(attributes.get("status", "")),
            url=str(attributes.get("url", "")),
        )

    def _json(
        self,
        method: str,
        path: str,
        operation: str,
        pacer: RateLimiter | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        # imgix counts each endpoint against its own published limit, or the default one.
        (pacer or self.pacers.default).acquire()
        send_headers = {"Content-Type": JSONAPI} if "json" in kw else {}
        send_headers.update(headers or {})
        if "json" in kw:
            # requests would label the body application/json; imgix speaks JSON:API.
            kw["data"] = json.dumps(kw.pop("json")).encode()
        try:
            prepared = self.session.prepare_request(
                requests.Request(
                    method, self.base_url + path, headers=send_headers, params=params, **kw
                )
            )
            if not params:
                # requests re-decodes %2E to '.', which turns an encoded '..' segment back
                # into a real one; send the path exactly as encoded.
                prepared.url = self.base_url + path
            response = self.session.send(
                prepared,
                timeout=(self.connect_timeout_s, self.read_timeout_s),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # The exception text carries only host and path, never headers.
            raise ImgixTransportError(0, type(exc).__name__, _short(exc), operation) from None
        if response.status_code >= 300:
            raise _error_from(response, operation)
        if not response.content:
            return {}
        body: dict[str, Any] = response.json()
        return body


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."


def _error_from(response: requests.Response, operation: str) -> ImgixError:
    title, detail = response.reason or "", ""
    try:
        errors = response.json().get("errors") or []
        if errors:
            title = str(errors[0].get("title") or title)
            detail = "; ".join(str(e.get("detail") or e.get("title") or "") for e in errors)
    except (ValueError, AttributeError):
        detail = response.text[:300]
    cls = ImgixNotFound if response.status_code == 404 else ImgixError
    return cls(response.status_code, title, detail, operation)
