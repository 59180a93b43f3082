"""How a request reaches imgix: the Bearer key, its pacing slot, retries, deadlines."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from imgix_autoadder.core.api_key import ApiKeyError, StaticApiKey
from imgix_autoadder.core.call_tally import IMGIX_CALLS
from imgix_autoadder.core.limits import BACKOFF_MAX_S
from imgix_autoadder.core.settings import Settings
from imgix_autoadder.imgix.connections import NEW_CONNECTION_ALLOWANCE_S, Connections
from imgix_autoadder.imgix.documents import JSONAPI, body_of
from imgix_autoadder.imgix.errors import (
    OUTAGE_STATUSES,
    TRANSIENT_STATUSES,
    ImgixAuthError,
    ImgixError,
    ImgixTransportError,
    ImgixUnavailable,
    OutOfTime,
    error_from,
    short,
)
from imgix_autoadder.rate.breaker import Breaker, BreakerOpen
from imgix_autoadder.rate.pacing import Pacer, Pacers, SlotTooLate

# A call that missed its slot (see Pacer.on_time) takes a new one, at most this often.
MAX_MISSED_SLOTS = 3
# What a call that must not be sent twice sends first when the breaker makes it the probe:
# an idempotent read that any key may ask (a refusal is an answer too: imgix is up).
PROBE_PATH = "/api/v1/sources"


class KeySource(Protocol):
    def get(self, fresh: bool = False) -> str: ...


@dataclass
class Transport:
    """Every call is paced, retried here (each retry takes a pacing slot again), bounded
    by `deadline` (a time.monotonic() value, set per invocation), and re-reads the key
    once on a 401, so that a rotated key is picked up without a cold start. While the
    stack's breaker is open (imgix down), no request is sent: ImgixUnavailable says when
    to try again."""

    api_key: KeySource | str = field(repr=False)
    # Defaults are the settings' own (core/config.py), declared once there.
    base_url: str = Settings.api_base_url
    connect_timeout_s: float = Settings.connect_timeout_s
    read_timeout_s: float = Settings.read_timeout_s
    max_retries: int = Settings.max_retries
    backoff_factor_s: float = Settings.backoff_factor_s
    retry_after_max_s: int = Settings.retry_after_max_s
    pool_size: int = 10
    pacers: Pacers = field(default_factory=Pacers.unlimited)
    breaker: Breaker = field(default_factory=Breaker)
    max_pacing_wait_s: float = Settings.max_pacing_wait_s
    deadline: float | None = None
    session: requests.Session = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys: KeySource = (
            StaticApiKey(self.api_key) if isinstance(self.api_key, str) else self.api_key
        )
        self._key: str | None = None
        self._key_lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(self.pool_size)
        self._connections = Connections()
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

    def _current_key(self, fresh: bool, operation: str) -> str:
        with self._key_lock:
            if self._key is None or fresh:
                try:
                    self._key = self._keys.get(fresh=fresh)
                except ApiKeyError as exc:
                    raise ImgixAuthError(0, "API key unavailable", str(exc), operation) from None
            return self._key

    def request(
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
        admitted_attempt = -1  # a new slot or a fresh key is not a new attempt: one admission
        paced_by = pacer or self.pacers.default
        while True:
            # imgix counts each endpoint against its own published limit, or the default
            # one; a retry is a request like any other and waits for its own slot.
            # The key first: a read from Secrets Manager between the slot and the send
            # would make the call reach imgix late, closer to the next caller's slot.
            key = self._current_key(fresh=False, operation=operation)
            if admitted_attempt != attempt:
                self._admit(operation, key, probe_first=not resend)
                admitted_attempt = attempt
            late = NEW_CONNECTION_ALLOWANCE_S if self._connections.cold() else 0.0
            prepared = self._prepare(method, path, params, key, send_headers, kw)
            self._pace(paced_by, operation, late)
            try:
                response = self._send(prepared, paced_by, missed < MAX_MISSED_SLOTS)
            except _MissedSlot:
                missed += 1  # nothing was sent: the slot is left empty, a new one taken
                continue
            except requests.RequestException as exc:
                lost = ImgixTransportError(0, type(exc).__name__, short(exc), operation)
                unsent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
                    isinstance(exc, requests.ConnectionError)
                    and not isinstance(exc, requests.exceptions.ReadTimeout)
                    and "RemoteDisconnected" not in repr(exc)
                )
                # A call that may have reached imgix and must not be sent twice keeps its
                # own error: its caller knows how to settle that doubt.
                self._outage(lost, stop=resend or unsent)
                if attempt < self.max_retries and (resend or unsent):
                    self._back_off(attempt, None, operation)
                    attempt += 1
                    continue
                raise lost from None
            status = response.status_code
            if status in OUTAGE_STATUSES:
                self._outage(error_from(response, operation))
            else:
                self.breaker.answered()
            if status == 401 and not reauthenticated:
                # The key may have been rotated: read it again, past the cache, once.
                reauthenticated = True
                self._current_key(fresh=True, operation=operation)
                continue
            if status < 300 or status in also_success:
                return body_of(response)
            error = error_from(response, operation)
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

    def _prepare(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        key: str,
        headers: dict[str, str],
        kw: dict[str, Any],
    ) -> requests.PreparedRequest:
        """Built before the pacing slot, so that nothing but the send follows it."""
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
        return prepared

    def _send(
        self, prepared: requests.PreparedRequest, pacer: Pacer, check_slot: bool = True
    ) -> requests.Response:
        """Send on `pacer`'s slot (if still `on_time`), and tell it when the call is back
        (or was never sent): the shared budget's lane is free one window after that."""
        status = None  # not sent; 0: no answer
        try:
            with self._in_flight:
                if check_slot and not pacer.on_time():
                    raise _MissedSlot  # before in_use: no connection was used
                with self._connections.in_use():
                    status = 0
                    # A key that reached another host on a redirect would be a leak: never
                    # follow. (max_redirects=0 would instead raise on every 3xx, losing
                    # its Location.)
                    response = self.session.send(
                        prepared,
                        timeout=(self.connect_timeout_s, self.read_timeout_s),
                        allow_redirects=False,
                    )
                    status = response.status_code
                    return response
        finally:
            pacer.answered()
            if status is not None:
                IMGIX_CALLS.count(self.pacers.class_of(pacer), status)

    def _admit(self, operation: str, key: str, probe_first: bool) -> None:
        try:
            probing = self.breaker.admit()
        except BreakerOpen as shut:
            raise ImgixUnavailable.because(shut, operation) from None
        except Exception as exc:  # the breaker's table unreachable: imgix may still be up
            raise ImgixTransportError(0, "Breaker unavailable", short(exc), operation) from None
        if probing and probe_first:
            # A timed-out probe may still have been carried out: never let it be one that
            # opens an upload session or a Source.
            self._probe(key, operation)

    def _probe(self, key: str, operation: str) -> None:
        """Ask imgix whether it is back with an idempotent read; raises ImgixUnavailable
        (the breaker reopened) when it is not."""
        checking = f"probe before {operation}"
        prepared = self._prepare("GET", PROBE_PATH, None, key, {}, {})
        self._pace(self.pacers.default, checking)
        try:
            response = self._send(prepared, self.pacers.default, check_slot=False)
        except requests.RequestException as exc:
            lost = ImgixTransportError(0, type(exc).__name__, short(exc), checking)
            self._outage(lost)
            raise lost from None  # the breaker's table unreachable: an ordinary failure
        if response.status_code in OUTAGE_STATUSES:
            failed = error_from(response, checking)
            self._outage(failed)
            raise failed
        self.breaker.answered()

    def _outage(self, error: ImgixError, stop: bool = True) -> None:
        """Tell the breaker; when that left it open, stop: no more retries from here."""
        try:
            wait_s = self.breaker.outage()
        except Exception:  # the breaker's table unreachable: retry as without a breaker
            return
        if wait_s is not None and stop:
            raise ImgixUnavailable(
                503,
                "imgix unavailable",
                f"{error.detail} (the stack's breaker is open: next try in {wait_s:.0f} s)",
                error.operation,
                wait_s,
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
            raise ImgixTransportError(0, "Rate budget unavailable", short(exc), operation) from None

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
