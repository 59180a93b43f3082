"""imgix's failures as exceptions, read from its answers: errors[].detail, Retry-After."""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from imgix_autoadder.rate.breaker import BreakerOpen

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Answers that say imgix itself is failing (with no answer at all): what the breaker counts.
OUTAGE_STATUSES = frozenset({500, 502, 503, 504})


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


class ImgixUnavailable(ImgixError):
    """imgix is down (the stack's breaker is open): no request was sent, or this one's
    failure left the breaker open. `retry_after_s` says when the breaker looks again."""

    @classmethod
    def because(cls, shut: BreakerOpen, operation: str) -> ImgixUnavailable:
        detail = f"{shut}: no call sent; next try in {shut.wait_s:.0f} s"
        return cls(503, "imgix unavailable", detail, operation, shut.wait_s)


class OutOfTime(ImgixError):
    """The call cannot be made before the caller's deadline: hand the work back.

    Raised before a request is sent (a pacing slot or a backoff too far away), so nothing
    reached imgix. `retry_after_s` says when a slot is expected.
    """


def short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."


def readable(text: str, limit: int = 200) -> str:
    """A body excerpt fit for a log line or a DLQ reason: no markup, no line breaks."""
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def retry_after(response: requests.Response) -> float | None:
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


def error_from(response: requests.Response, operation: str) -> ImgixError:
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
            detail = readable(response.text) or "(empty body)"
    cls = ImgixNotFound if status == 404 else ImgixAuthError if status == 401 else ImgixError
    return cls(
        status, readable(title, 100), readable(detail, 500), operation, retry_after(response)
    )
