"""What runs when a Lambda invocation ends, whatever it returned or raised.

The shared rate budget leases lanes for as long as a process has calls to make; a Lambda
environment is frozen as soon as its handler returns, so it decides here whether to give
them back (with their exact free times) or keep them for its next invocation. Each action
gets a way to ask whether the function's queue is drained (`queue_drained_by`): then no
next batch may come soon, and lanes kept would lapse unused while other environments
finish theirs. It is asked at most once, and only by an action that needs the answer.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

QueueDrained = Callable[[], bool]
_AT_END: list[weakref.WeakMethod[Callable[[QueueDrained], None]]] = []


def _no_probe() -> bool:  # (rate/lanes.cannot_say: this package imports none of rate's)
    return False


_probe: list[QueueDrained] = [_no_probe]


def at_end(action: Callable[[QueueDrained], None]) -> None:
    """Run `action(queue_drained)` (a bound method, held weakly) at the end of every
    invocation."""
    _AT_END[:] = [ref for ref in _AT_END if ref() is not None]
    _AT_END.append(weakref.WeakMethod(action))


def queue_drained_by(probe: QueueDrained) -> None:
    """How this invocation can tell that its queue holds nothing more (by default it
    cannot: False)."""
    _probe[0] = probe


def ended() -> None:
    probe, _probe[0] = functools.cache(_probe[0]), _no_probe
    for ref in list(_AT_END):
        action = ref()
        if action is None:
            continue
        try:
            action(probe)
        except Exception:  # noqa: S112 - what was not given back lapses by itself
            continue
