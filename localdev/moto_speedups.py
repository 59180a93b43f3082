"""Make in-process moto's SQS cost what SQS costs: O(1) per message, not O(queue) per message.

Test machinery, not product code. moto 5.2.5 answers correctly but quadratically:
- `receive_message` checks each message's retention with `get_queue_attributes`, which
  builds every attribute of the queue, including three counts that walk every message;
- `send_message` builds the same attributes to read ContentBasedDeduplication.
With 1,000 messages queued (the fault-injection test) that was 160 of its 186 s, all in the
stand-in (measured with pyinstrument). The patches keep every answer as moto gives it:
the retention check reads the queue's retention period directly, and the three counts are
taken in one walk, at one instant, while the attributes are built.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time, unix_time_millis
from moto.sqs import models

_walk = threading.local()


def _counts(queue: Any) -> tuple[int, int, int]:
    """(visible and not delayed, delayed, not visible), as moto's three properties count."""
    now = unix_time_millis()
    ready = delayed = not_visible = 0
    for message in queue._messages:
        is_visible = now > message.visible_at
        is_delayed = now < message.delayed_until
        ready += is_visible and not is_delayed
        delayed += is_delayed
        not_visible += not is_visible
    return ready, delayed, not_visible


def _from_walk(index: int, count: Callable[[Any], int]) -> property:
    def get(queue: Any) -> int:
        walked = getattr(_walk, "counts", None)
        if walked is not None and walked[0] is queue:
            return int(walked[1][index])
        return count(queue)

    return property(get)


def _attributes_in_one_walk(build: Callable[[Any], dict[str, Any]]) -> property:
    def get(queue: Any) -> dict[str, Any]:
        _walk.counts = (queue, _counts(queue))
        try:
            return build(queue)
        finally:
            _walk.counts = None

    return property(get)


def _retention_ok(backend: Any, queue_name: str, message: Any) -> bool:
    retention_s = int(backend.get_queue(queue_name).message_retention_period)
    return bool(retention_s + message.sent_timestamp / 1000 > unix_time())


def apply() -> None:
    """Patch moto's SQS once per process (idempotent)."""
    queue = models.Queue
    if getattr(queue, "_speedups_applied", False):
        return
    counts = (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    )
    for index, name in enumerate(counts):
        setattr(queue, name, _from_walk(index, getattr(queue, name).fget))
    build = vars(queue)["attributes"].fget
    setattr(queue, "attributes", _attributes_in_one_walk(build))  # noqa: B010
    backend = models.SQSBackend
    setattr(backend, "is_message_valid_based_on_retention_period", _retention_ok)  # noqa: B010
    setattr(queue, "_speedups_applied", True)  # noqa: B010
