"""The one imgix Management API client (JSON:API over a pooled requests session)."""

from __future__ import annotations

import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from imgix_autoadder.core.api_key import ApiKeyError, StaticApiKey
from imgix_autoadder.core.config import BACKOFF_MAX_S, MAX_PACING_WAIT_S
from imgix_autoadder.rate.pacing import Pacer, RateLimiter, SlotTooLate

JSONAPI = "application/vnd.api+json"
MAX_PAGES = 1000
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# imgix documents that a purge of the same URL within 10 s may answer 409 and still
# succeed (Management API, Purges).
PURGE_REPEATED = 409
# A call that must open a new connection reaches imgix later than its pacing slot (TCP and
# TLS handshakes: two or three round trips), while the next call, on a warm connection,
# does not: the budget keeps the next slot this much further off. A client that has not
# completed a call for KEEPALIVE_S may find its connections closed by the server (load
# balancers commonly keep idle connections 60 s), so its next call counts as cold.
NEW_CONNECTION_ALLOWANCE_S = 0.3
KEEPALIVE_S = 30.0
# A call that missed its slot (see Pacer.on_time) takes a new one, at most this often.
MAX_MISSED_SLOTS = 3


class KeySource(Protocol):
    def get(self, fresh: bool = False) -> str: ...


@dataclass
class ImgixError(Exception):
    """An imgix API failure, carrying imgix's own errors[].detail where it sent one."""

    status: int
    title: str
    detail: str
    operation: str
    retry_after_s: float | None = None  # what imgix asked for, when it did

    def __str__(self) -> str:
        return f"imgix {self.operation} failed: HTTP {self.status} {self.title}: {self.detail}"

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES or self.status == 0


class ImgixNotFound(ImgixError):
    """404: the Source, asset or session does not exist (or the origin lacks the file)."""


class ImgixTransportError(ImgixError):
    """No HTTP answer at all (connection reset, timeout) after every retry."""


class ImgixAuthError(ImgixError):
    """The key was refused (401) even after re-reading it, or could not be read at all."""


class OutOfTime(ImgixError):
    """The call cannot be made before the caller's deadline: hand the work back.

    Raised before a request is sent (a pacing slot or a backoff too far away), so nothing
    reached imgix. `retry_after_s` says when a slot is expected.
    """


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
    """One pacer per published imgix limit class (API Rate Limits): the default, refresh,
    upload, purge and get asset."""

    default: Pacer
    refresh: Pacer
    upload: Pacer
    purge: Pacer
    get_asset: Pacer = field(default_factory=lambda: RateLimiter(0))

    @classmethod
    def unlimited(cls) -> Pacers:
        return cls(RateLimiter(0), RateLimiter(0), RateLimiter(0), RateLimiter(0))

    @classmethod
    def per_second(
        cls,
        default: float,
        refresh_per_minute: float,
        upload: float,
        purge: float,
        get_asset: float = 0.0,
    ) -> Pacers:
        return cls(
            RateLimiter(default),
            RateLimiter(refresh_per_minute / 60.0),
            RateLimiter(upload),
            RateLimiter(purge),
            RateLimiter(get_asset),
        )


@dataclass
class ImgixClient:
    """Every call is paced, retried by this class (each retry takes a pacing slot again),
    bounded by `deadline` (a time.monotonic() value, set per invocation), and re-reads the
    key once on a 401, so that a rotated key is picked up without a cold start."""

    api_key: KeySource | str = field(repr=False)
    base_url: str = "https://api.imgix.com"
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 15.0
    max_retries: int = 5
    backoff_factor_s: float = 0.5
    retry_after_max_s: int = 20
    pool_size: int = 10
    pacers: Pacers = field(default_factory=Pacers.unlimited)
    max_pacing_wait_s: float = MAX_PACING_WAIT_S
    deadline: float | None = None
    session: requests.Session = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys: KeySource = (
            StaticApiKey(self.api_key) if isinstance(self.api_key, str) else self.api_key
        )
        self._key: str | None = None
        self._key_lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(self.pool_size)
        self._connections = _Connections()
        self.session = requests.Session()
        adapter = HTTPAdapter(
            max_retries=0, pool_connections=self.pool_size, pool_maxsize=self.pool_size
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"Accept": JSONAPI})

    @property
    def attempt_budget_s(self) -> float:
        """The longest one attempt can take."""
        return self.connect_timeout_s + self.read_timeout_s

    # -- Sources -------------------------------------------------------------------------
    def list_sources(
        self,
        deployment_type: str | None = None,
        filters: dict[str, str] | None = None,
        sort: str | None = None,
        page_size: int = 100,
    ) -> list[dict[str, Any]]:
        """Every Source, through every page (Sources: filters, sorts; page[number] from 0
        and page[size], as imgix-management-js shows them)."""
        params = {f"filter[{name}]": value for name, value in (filters or {}).items()}
        if deployment_type:
            params["filter[deployment.type]"] = deployment_type
        if sort:
            params["sort"] = sort
        found: list[dict[str, Any]] = []
        for number in range(MAX_PAGES):
            page = {**params, "page[number]": str(number), "page[size]": str(page_size)}
            body = self._json("GET", "/api/v1/sources", "list sources", params=page)
            items = _list_of(body, "list sources")
            found += items
            if len(items) < page_size:
                break
        return found

    def create_source(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Sources: POST sources, "Create (and deploy) a new Source" (60 an hour)."""
        body = {
            "data": {"type": "sources", "attributes": attributes},
            "jsonapi": {"version": "1.0"},
        }
        # Not idempotent: a retry after an unanswered request could create a second Source.
        answer = self._json("POST", "/api/v1/sources", "create source", json=body, resend=False)
        return _data_of(answer, "create source")

    def get_source(self, source_id: str) -> dict[str, Any]:
        body = self._json("GET", f"/api/v1/sources/{quote(source_id, safe='')}", "get source")
        return _data_of(body, "get source")

    def update_source(self, source_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        body = {"data": {"id": source_id, "type": "sources", "attributes": attributes}}
        answer = self._json(
            "PATCH", f"/api/v1/sources/{quote(source_id, safe='')}", "update source", json=body
        )
        return _data_of(answer, "update source")

    # -- Assets --------------------------------------------------------------------------
    def add_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"{self._source(source_id)}/assets/add/{encode_origin_path(origin_path)}"
        return self._json("POST", path, "add asset", json={})

    def refresh_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        path = f"{self._source(source_id)}/assets/refresh/{encode_origin_path(origin_path)}"
        return self._json("POST", path, "refresh asset", json={}, pacer=self.pacers.refresh)

    def get_asset(self, source_id: str, origin_path: str) -> dict[str, Any]:
        """Management API, Assets: GET sources/:source_id/assets/:origin_path."""
        path = f"{self._source(source_id)}/assets/{encode_origin_path(origin_path)}"
        answer = self._json("GET", path, "get asset", pacer=self.pacers.get_asset)
        return _data_of(answer, "get asset")

    def update_asset(
        self, source_id: str, origin_path: str, attributes: dict[str, Any]
    ) -> dict[str, Any]:
        """Management API, Assets: PATCH sources/:source_id/assets/:origin_path (Edit)."""
        path = f"{self._source(source_id)}/assets/{encode_origin_path(origin_path)}"
        body = {
            "data": {"id": f"{source_id}/{origin_path}", "type": "assets", "attributes": attributes}
        }
        return _data_of(self._json("PATCH", path, "update asset", json=body), "update asset")

    def has_asset(self, source_id: str, origin_path: str) -> bool:
        try:
            self.get_asset(source_id, origin_path)
        except ImgixNotFound:
            return False
        return True

    def purge(self, url: str) -> dict[str, Any]:
        body = {"data": {"type": "purges", "attributes": {"url": url}}}
        return self._json(
            "POST",
            "/api/v1/purge",
            "purge",
            json=body,
            pacer=self.pacers.purge,
            also_success=(PURGE_REPEATED,),
        )

    # -- Uploads -------------------------------------------------------------------------
    def upload(
        self, source_id: str, origin_path: str, body: bytes, content_type: str
    ) -> dict[str, Any]:
        # imgix replaces an existing file only when asked (Management API, Assets: upload).
        path = f"{self._source(source_id)}/upload/{encode_origin_path(origin_path)}"
        path += "?overwrite=true"
        return self._json(
            "POST",
            path,
            "upload",
            data=body,
            headers={"Content-Type": content_type},
            pacer=self.pacers.upload,
        )

    def create_upload_session(
        self, source_id: str, origin_path: str, content_type: str
    ) -> UploadSession:
        """The file's Content-Type goes with the request, as imgix's upload-session demo
        sends it: the presigned URL may be signed with it, and the PUT must then match."""
        path = f"{self._source(source_id)}/upload-sessions/{encode_origin_path(origin_path)}"
        # Not idempotent: a retry after an unanswered request would open a second session.
        return self._session(
            "POST",
            path,
            "create upload session",
            data=b"",
            headers={"Content-Type": content_type},
            resend=False,
        )

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
        data = _data_of(self._json(method, path, operation, **kw), operation)
        found = data.get("attributes")
        attributes: dict[str, Any] = found if isinstance(found, dict) else {}
        return UploadSession(
            id=str(data.get("id") or attributes.get("id") or ""),
            status=str(attributes.get("status", "")),
            url=str(attributes.get("url", "")),
        )

    def _current_key(self, fresh: bool, operation: str) -> str:
        with self._key_lock:
            if self._key is None or fresh:
                try:
                    self._key = self._keys.get(fresh=fresh)
                except ApiKeyError as exc:
                    raise ImgixAuthError(0, "API key unavailable", str(exc), operation) from None
            return self._key

    def _json(
        self,
        method: str,
        path: str,
        operation: str,
        pacer: Pacer | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        also_success: tuple[int, ...] = (),
        resend: bool = True,
        **kw: Any,
    ) -> dict[str, Any]:
        send_headers = {"Content-Type": JSONAPI} if "json" in kw else {}
        send_headers.update(headers or {})
        if "json" in kw:
            # requests would label the body application/json; imgix speaks JSON:API.
            kw["data"] = json.dumps(kw.pop("json")).encode()
        attempt, reauthenticated, missed = 0, False, 0
        paced_by = pacer or self.pacers.default
        while True:
            # imgix counts each endpoint against its own published limit, or the default
            # one; a retry is a request like any other and waits for its own slot.
            # The key first: a read from Secrets Manager between the slot and the send
            # would make the call reach imgix late, closer to the next caller's slot.
            key = self._current_key(fresh=False, operation=operation)
            late = NEW_CONNECTION_ALLOWANCE_S if self._connections.cold() else 0.0
            self._pace(paced_by, operation, late)
            try:
                response = self._send(
                    method,
                    path,
                    params,
                    key,
                    send_headers,
                    kw,
                    paced_by if missed < MAX_MISSED_SLOTS else None,
                )
            except _MissedSlot:
                missed += 1  # nothing was sent: the slot is left empty, a new one taken
                continue
            except requests.RequestException as exc:
                unsent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
                    isinstance(exc, requests.ConnectionError)
                    and not isinstance(exc, requests.exceptions.ReadTimeout)
                    and "RemoteDisconnected" not in repr(exc)
                )
                if attempt < self.max_retries and (resend or unsent):
                    self._back_off(attempt, None, operation)
                    attempt += 1
                    continue
                raise ImgixTransportError(0, type(exc).__name__, _short(exc), operation) from None
            status = response.status_code
            if status == 401 and not reauthenticated:
                # The key may have been rotated: read it again, past the cache, once.
                reauthenticated = True
                self._current_key(fresh=True, operation=operation)
                continue
            if status < 300 or status in also_success:
                return _body_of(response)
            error = _error_from(response, operation)
            if status == 429:
                # Something outside the budget uses the account: every caller slows down.
                paced_by.throttled()
            if status in TRANSIENT_STATUSES and attempt < self.max_retries:
                if error.retry_after_s is not None and error.retry_after_s > self.retry_after_max_s:
                    raise error  # imgix asks for longer than a handler should hold a record
                self._back_off(attempt, error.retry_after_s, operation)
                attempt += 1
                continue
            raise error

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        key: str,
        headers: dict[str, str],
        kw: dict[str, Any],
        pacer: Pacer | None = None,
    ) -> requests.Response:
        if hasattr(kw.get("data"), "seek"):
            kw["data"].seek(0)
        request = requests.Request(
            method,
            self.base_url + path,
            headers={**headers, "Authorization": f"Bearer {key}"},
            params=params,
            **kw,
        )
        try:
            prepared = self.session.prepare_request(request)
        except ValueError:
            prepared = None  # raised below, outside this block, so no context is chained
        if prepared is None:
            # requests' InvalidHeader text would hold the whole header, key included.
            raise ImgixAuthError(
                0, "API key unusable", "the key cannot travel in an HTTP header", "prepare"
            )
        if not params:
            # requests re-decodes %2E to '.', which turns an encoded '..' segment back
            # into a real one; send the path exactly as encoded.
            prepared.url = self.base_url + path
        with self._in_flight:
            if pacer is not None and not pacer.on_time():
                raise _MissedSlot  # before in_use: no connection was used
            with self._connections.in_use():
                # A key that reached another host on a redirect would be a leak: never
                # follow. (max_redirects=0 would instead raise on every 3xx, losing its
                # Location.)
                return self.session.send(
                    prepared,
                    timeout=(self.connect_timeout_s, self.read_timeout_s),
                    allow_redirects=False,
                )

    def _pace(self, pacer: Pacer, operation: str, late_s: float = 0.0) -> None:
        max_wait = self.max_pacing_wait_s
        if self.deadline is not None:
            room = self.deadline - time.monotonic() - self.attempt_budget_s
            if room < 0:
                raise OutOfTime(0, "Out of time", "no time left for a request", operation, 1.0)
            max_wait = min(max_wait, room)
        try:
            pacer.acquire(max_wait, late_s)
        except SlotTooLate as late:
            raise OutOfTime(
                0,
                "Out of time",
                f"next {operation} slot is {late.wait_s:.1f} s away",
                operation,
                late.wait_s,
            ) from None
        except Exception as exc:  # the shared budget's table unreachable or refused
            raise ImgixTransportError(
                0, "Rate budget unavailable", _short(exc), operation
            ) from None

    def _back_off(self, attempt: int, retry_after_s: float | None, operation: str) -> None:
        """Full jitter, as AWS advises; imgix's Retry-After wins when it sends one."""
        cap = min(BACKOFF_MAX_S, self.backoff_factor_s * 2**attempt)
        wait = retry_after_s if retry_after_s is not None else random.uniform(0, cap)
        if self.deadline is not None and (
            time.monotonic() + wait + self.attempt_budget_s > self.deadline
        ):
            raise OutOfTime(
                0, "Out of time", f"no time left to retry after {wait:.1f} s", operation, wait
            )
        time.sleep(wait)


class _MissedSlot(Exception):
    """The call was ready to go only after its pacing slot had passed."""


class _Connections:
    """Whether the next request will likely open a new connection: none was ever made,
    or none completed for KEEPALIVE_S. (A second connection for concurrent calls is
    opened only when calls take longer than the spacing, and then arrive spread out.)"""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._active = 0
        self._last_done = float("-inf")

    def cold(self) -> bool:
        with self._lock:
            return not self._active and self._clock() - self._last_done > KEEPALIVE_S

    @contextmanager
    def in_use(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._last_done = self._clock()


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."


def _readable(text: str, limit: int = 200) -> str:
    """A body excerpt fit for a log line or a DLQ reason: no markup, no line breaks."""
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _body_of(response: requests.Response) -> dict[str, Any]:
    """A success body: JSON:API when imgix sent it; anything else reads as empty."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {"unparsed": _readable(response.text)}
    return body if isinstance(body, dict) else {"unparsed": _readable(response.text)}


def _data_of(body: dict[str, Any], operation: str) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise ImgixError(
            0,
            "Malformed response",
            f"expected a JSON:API document with data, got {body}"[:300],
            operation,
        )
    return data


def _list_of(body: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ImgixError(0, "Malformed response", "expected a list of resources", operation)
    return data


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds or as an HTTP date (RFC 9110); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from(response: requests.Response, operation: str) -> ImgixError:
    """imgix's errors[] when the body has it; else a readable excerpt of whatever came."""
    status = response.status_code
    title, detail = response.reason or "", ""
    if 300 <= status < 400:
        host = urlsplit(response.headers.get("Location", "")).hostname or "(none)"
        detail = f"redirect to {host} not followed (is IMGIX_API_BASE_URL right?)"
    else:
        try:
            document = response.json()
        except ValueError:
            document = None
        errors = document.get("errors") if isinstance(document, dict) else None
        if isinstance(errors, dict):
            errors = [errors]
        if isinstance(errors, list) and errors:
            parts = [e if isinstance(e, dict) else {"detail": e} for e in errors]
            title = str(parts[0].get("title") or title)
            detail = "; ".join(str(e.get("detail") or e.get("title") or "") for e in parts)
        else:
            detail = _readable(response.text) or "(empty body)"
    cls = ImgixNotFound if status == 404 else ImgixAuthError if status == 401 else ImgixError
    return cls(
        status, _readable(title, 100), _readable(detail, 500), operation, _retry_after(response)
    )
