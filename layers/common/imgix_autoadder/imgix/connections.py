"""Whether a request will likely pay a connection's handshakes before it reaches imgix."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# A call that must open a new connection reaches imgix later than its pacing slot (TCP and
# TLS handshakes: two or three round trips), while the next call, on a warm connection,
# does not: the budget keeps the next slot this much further off. A client that has not
# completed a call for KEEPALIVE_S may find its connections closed by the server (load
# balancers commonly keep idle connections 60 s), so its next call counts as cold.
NEW_CONNECTION_ALLOWANCE_S = 0.3
KEEPALIVE_S = 30.0


class Connections:
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
