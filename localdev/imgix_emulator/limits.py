"""Rate limits, per the API Rate Limits page (docs.imgix.com/references/api-rate-limits):

default 4/s, update source 60/h, create source 60/h, get asset 10/s, refresh asset 10/min,
upload v1 2/s, purge asset 10/s. "We return a 429 Too Many Requests error to new API
requests if the rate limit is exceeded for any given endpoint."

Undocumented, modelled as:
- one budget per account (every key of the emulator shares it);
- the page gives no window: `window="sliding"` (the default, the strictest reading: at
  most N requests in any interval of the window's length) or `window="fixed"` (N per
  aligned second, minute or hour, as a counter per period keeps it). Both are allowed by
  the page, so the bench runs both;
- a refused request does not count against the window;
- no Retry-After header: the page names none. `retry_after_header=True` sends one, so that
  a test can show the client takes it when present.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from localdev.imgix_emulator.errors import ApiError

# (requests, window seconds) per limit class.
PUBLISHED_LIMITS: dict[str, tuple[int, float]] = {
    "default": (4, 1.0),
    "create_source": (60, 3600.0),
    "update_source": (60, 3600.0),
    "get_asset": (10, 1.0),
    "refresh": (10, 60.0),
    "upload": (2, 1.0),
    "purge": (10, 1.0),
}


class RateLimits:
    def __init__(
        self,
        limits: dict[str, tuple[int, float]] | None,
        clock: Callable[[], float] = time.monotonic,
        window: str = "sliding",
    ) -> None:
        if window not in ("sliding", "fixed"):
            raise ValueError(f"window must be 'sliding' or 'fixed', not {window!r}")
        self.limits = dict(limits) if limits else {}
        self.retry_after_header = False
        self.window = window
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._periods: dict[str, tuple[int, int]] = {}  # class -> (period index, count)
        self._lock = threading.Lock()

    def take(self, limit_class: str) -> None:
        """Count one request against its class, or refuse it with 429."""
        if limit_class not in self.limits:
            return
        limit, window = self.limits[limit_class]
        now = self._clock()
        if self.window == "fixed":
            self._take_fixed(limit_class, limit, window, now)
            return
        with self._lock:
            stamps = self._windows.setdefault(limit_class, deque())
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= limit:
                headers = {}
                if self.retry_after_header:
                    headers["Retry-After"] = str(max(1, math.ceil(stamps[0] + window - now)))
                raise ApiError(
                    429,
                    "Too Many Requests",
                    f"rate limit of {limit} per {window:g}s exceeded for {limit_class}",
                    headers,
                )
            stamps.append(now)

    def _take_fixed(self, limit_class: str, limit: int, window: float, now: float) -> None:
        period = math.floor(now / window)
        with self._lock:
            current, count = self._periods.get(limit_class, (period, 0))
            if current != period:
                count = 0
            if count >= limit:
                headers = {}
                if self.retry_after_header:
                    headers["Retry-After"] = str(max(1, math.ceil((period + 1) * window - now)))
                raise ApiError(
                    429,
                    "Too Many Requests",
                    f"rate limit of {limit} per {window:g}s exceeded for {limit_class}",
                    headers,
                )
            self._periods[limit_class] = (period, count + 1)
