"""What runs when a Lambda invocation ends, whatever it returned or raised.

The shared rate budget leases lanes for as long as a process has calls to make; a Lambda
environment is frozen as soon as its handler returns, so it gives them back here (with
their exact free times) rather than leave them to lapse while it sleeps.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

_AT_END: list[weakref.WeakMethod[Callable[[], None]]] = []


def at_end(action: Callable[[], None]) -> None:
    """Run `action` (a bound method, held weakly) at the end of every invocation."""
    _AT_END[:] = [ref for ref in _AT_END if ref() is not None]
    _AT_END.append(weakref.WeakMethod(action))


def ended() -> None:
    for ref in list(_AT_END):
        action = ref()
        if action is None:
            continue
        try:
            action()
        except Exception:  # noqa: S112 - what was not given back lapses by itself
            continue
