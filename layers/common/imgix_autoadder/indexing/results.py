"""What became of each record and key: a status, the imgix call made, and the batch's tally."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from imgix_autoadder.core.limits import SQS_MAX_DELAY_S
from imgix_autoadder.imgix.errors import ImgixAuthError, ImgixError, ImgixUnavailable, OutOfTime

# A record held back by a refused key, or by imgix's rate limits, comes back after this.
AUTH_RETRY_DELAY_S = 60.0
RATE_LIMITED_DELAY_S = 30.0
IN_PROGRESS_DELAY_S = 5.0


class Status(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    DEFER = "defer"  # handed back to the queue with a delay, without spending a receive
    POISON = "poison"  # no retry can help: to the DLQ with the reason
    RETRY = "retry"  # transient: report as a batch item failure

    @property
    def severity(self) -> int:
        order = [Status.SKIPPED, Status.DONE, Status.DEFER, Status.POISON, Status.RETRY]
        return order.index(self)


class Action(StrEnum):
    ADD = "add"
    REFRESH = "refresh"
    PURGE = "purge"
    NONE = "none"


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str


@dataclass
class Result:
    status: Status
    reason: str = ""
    api_ms: list[float] = field(default_factory=list)
    delay_s: float = 0.0  # DEFER: when to try again
    key_rejected: bool = False  # imgix refused the API key, even freshly read
    imgix_unavailable: bool = False  # held back by the stack's breaker (imgix down)


def outcome_of(exc: ImgixError) -> Result:
    """What becomes of a record whose imgix call failed: every answer has one outcome."""
    reason = str(exc)
    if isinstance(exc, ImgixUnavailable):
        # An outage: every retry will help, later. Held back until the breaker looks again
        # (its openings grow while imgix stays down), spending no receive: never the DLQ.
        delay_s = min(SQS_MAX_DELAY_S, exc.retry_after_s or 1.0)
        return Result(Status.DEFER, reason, delay_s=delay_s, imgix_unavailable=True)
    if isinstance(exc, OutOfTime):
        return Result(Status.DEFER, reason, delay_s=exc.retry_after_s or 1.0)
    if isinstance(exc, ImgixAuthError):
        # A rotation in progress or a revoked key: wait for the operator, lose nothing.
        return Result(Status.DEFER, reason, delay_s=AUTH_RETRY_DELAY_S, key_rejected=True)
    if exc.status == 429 or (exc.transient and exc.retry_after_s is not None):
        return Result(Status.DEFER, reason, delay_s=exc.retry_after_s or RATE_LIMITED_DELAY_S)
    return Result(Status.RETRY if exc.transient else Status.POISON, reason)


@dataclass
class BatchReport:
    results: dict[str, Result] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    api_latency_ms: list[float] = field(default_factory=list)
    # From S3's eventTime to imgix's answer, per key that cost a call: how fresh imgix is.
    event_age_s: list[float] = field(default_factory=list)

    def merge(self, message_id: str, result: Result) -> None:
        current = self.results.get(message_id)
        if current is None or result.status.severity > current.status.severity:
            self.results[message_id] = result
