"""Test machinery, not imgix: scripted and random faults, canned answers."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable

# "timeout", "reset", "answer:<name>" or any HTTP status as a string ("429", "503"...).
FAULT_KINDS = ("429", "500", "503", "timeout", "reset")


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
