"""The network between a client and imgix, as the bench needs it (test machinery, not
imgix): each request reaches the server after a random extra delay, and the first request
on a new connection after a handshake's worth more. The delay comes before the request is
counted against the rate limit, as a slow network delays the arrival itself."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Network:
    jitter_s: float = 0.0  # each request: uniform in [0, jitter_s]
    handshake_s: float = 0.0  # the first request on each connection, on top
    seed: int = 7
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def delay_s(self, first_on_connection: bool) -> float:
        with self._lock:
            jitter = self._rng.uniform(0.0, self.jitter_s) if self.jitter_s else 0.0
        return jitter + (self.handshake_s if first_on_connection else 0.0)
