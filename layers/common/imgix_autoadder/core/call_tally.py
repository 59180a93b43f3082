"""The imgix calls an invocation made, per published limit class, as metrics: what the
dashboard plots against each limit. Counted by the transport, emitted by the handler."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from imgix_autoadder.core import invocation

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

P = ParamSpec("P")
R = TypeVar("R")

# Metric names per limit class (rate/pacing.Pacers' fields), and for the 429s among them.
CALL_METRICS = {
    "default": "ImgixCallsDefault",
    "refresh": "ImgixCallsRefresh",
    "purge": "ImgixCallsPurge",
    "upload": "ImgixCallsUpload",
    "get_asset": "ImgixCallsGetAsset",
}
THROTTLED_METRIC = "ImgixThrottled"


class CallTally:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, limit_class: str, status: int) -> None:
        """One request sent (`status` 0: it got no answer)."""
        with self._lock:
            self._counts[CALL_METRICS.get(limit_class, CALL_METRICS["default"])] += 1
            self._counts[THROTTLED_METRIC] += status == 429

    def drain(self) -> dict[str, int]:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return {name: value for name, value in counts.items() if value}


IMGIX_CALLS = CallTally()


def imgix_calls_counted(metrics: Metrics) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A handler decorator (inside `log_metrics`): the invocation's imgix calls become its
    metrics, whatever the handler returned or raised, after what must run at its end
    (core/invocation.py)."""

    def decorate(handler: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(handler)
        def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return handler(*args, **kwargs)
            finally:
                invocation.ended()
                for name, value in IMGIX_CALLS.drain().items():
                    metrics.add_metric(name=name, unit="Count", value=value)

        return counted

    return decorate
