"""No record is timed out or dead-lettered because of pacing, for any MaxConcurrency the
template allows: the handler looks at its remaining time and hands back, delayed and
without spending a receive, the work it cannot finish."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.rate.pacing import Pacers, RateLimiter, SlotTooLate
from tests.harness.events import notification, queued, s3_record, sqs_event
from tests.harness.template import TEMPLATE
from tests.harness.world import API_KEY, DOMAINS, FakeContext, Stack, load_function

PACING = (
    "IMGIX_DEFAULT_PER_SECOND",
    "IMGIX_REFRESH_PER_MINUTE",
    "IMGIX_UPLOAD_PER_SECOND",
    "IMGIX_PURGE_PER_SECOND",
)
TIMEOUT_S = TEMPLATE["Globals"]["Function"]["Timeout"]
MAX_CONCURRENCY = TEMPLATE["Parameters"]["MaxConcurrency"]


class Context(FakeContext):
    def __init__(self, remaining_s: float) -> None:
        self._until = time.monotonic() + remaining_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.monotonic()) * 1000)


def paced_indexer(monkeypatch: pytest.MonkeyPatch, max_concurrency: int) -> Any:
    """The indexer with the pacing template.yaml gives it: the shared rate budget
    (RATE_BUDGET_TABLE) at the published limits, whatever the MaxConcurrency."""
    for name in PACING:
        monkeypatch.delenv(name, raising=False)
    assert os.environ["RATE_BUDGET_TABLE"]
    return load_function("indexer")


def seed(stack: Stack, keys: list[str]) -> None:
    """Index the keys once (unpaced), so that new bytes for them mean refresh."""
    warm = load_function("indexer")
    bodies = [notification(s3_record("ObjectCreated:Put", k, stack.put(k, b"v1"))) for k in keys]
    assert warm.lambda_handler(sqs_event(*bodies), FakeContext()) == {"batchItemFailures": []}
    stack.emulator.reset_calls()


@pytest.mark.parametrize(
    "max_concurrency",
    [MAX_CONCURRENCY["MinValue"], MAX_CONCURRENCY["Default"], MAX_CONCURRENCY["MaxValue"]],
)
def test_a_batch_of_overwrites_never_outlasts_the_timeout(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, max_concurrency: int
):
    keys = [f"images/over/{i}.jpg" for i in range(10)]
    seed(stack, keys)
    indexer = paced_indexer(monkeypatch, max_concurrency)
    bodies = [notification(s3_record("ObjectCreated:Put", k, stack.put(k, b"v2"))) for k in keys]

    started = time.monotonic()
    response = indexer.lambda_handler(sqs_event(*bodies), Context(TIMEOUT_S))
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT_S - 10  # finished inside the timeout, with its reserve to spare
    assert response == {"batchItemFailures": []}  # no receive spent on any record
    assert stack.dlq_messages() == []
    refreshed = len(stack.emulator.calls_to("refresh_asset"))
    held = queued()
    assert refreshed >= 1 and refreshed + len(held) == 10
    # Each deferred record comes back when a refresh lane is near: a process spreads its
    # sends a tenth of the minute apart, and every lane is busy for a minute after its call.
    spacing = 60 / 10
    assert all(m.delayed_until / 1000 - time.time() >= spacing - 5 for m in held)


def test_adds_and_purges_never_wait_behind_refresh_pacing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    over = [f"images/mix/over-{i}.jpg" for i in range(3)]
    seed(stack, over)
    indexer = paced_indexer(monkeypatch, int(MAX_CONCURRENCY["Default"]))
    bodies = [notification(s3_record("ObjectCreated:Put", k, stack.put(k, b"v2"))) for k in over]
    new = [f"images/mix/new-{i}.jpg" for i in range(3)]
    bodies += [notification(s3_record("ObjectCreated:Put", k, stack.put(k))) for k in new]
    gone = [f"images/mix/gone-{i}.jpg" for i in range(3)]
    bodies += [notification(s3_record("ObjectRemoved:Delete", k)) for k in gone]

    started = time.monotonic()
    response = indexer.lambda_handler(sqs_event(*bodies), Context(TIMEOUT_S))
    elapsed = time.monotonic() - started

    assert response == {"batchItemFailures": []}
    assert len(stack.emulator.calls_to("add_asset")) == 3
    assert len(stack.emulator.calls_to("purge")) == 3 * len(DOMAINS)  # every domain of each
    # One refresh every 6 s from a process: what fits in the 10 s pacing wait runs, the rest
    # waits.
    refreshed = len(stack.emulator.calls_to("refresh_asset"))
    assert refreshed >= 1 and refreshed + len(queued()) == 3
    # 3 adds and 9 purges: seconds, not the wait of a refresh slot.
    assert elapsed < 20  # the last refresh is 12 s away: nothing waited for it


def test_no_imgix_call_starts_that_could_end_after_the_deadline(stack: Stack, indexer: Any):
    keys = [f"images/late/{i}.jpg" for i in range(3)]
    bodies = [notification(s3_record("ObjectCreated:Put", k, stack.put(k))) for k in keys]
    # 10.5 s left, 10 s of reserve: less than one attempt (connect 3.05 s + read 3 s).
    response = indexer.lambda_handler(sqs_event(*bodies), Context(10.5))

    assert response == {"batchItemFailures": []}
    assert stack.emulator.calls_to("add_asset") == []
    assert len(queued()) == 3 and stack.dlq_messages() == []


def test_a_long_retry_after_hands_the_record_back_at_once(stack: Stack, indexer: Any):
    stack.emulator.answers["429"] = (429, {"Retry-After": "120"}, b'{"errors": []}')
    stack.emulator.faults.script(["answer:429"], route="add_asset")
    body = notification(
        s3_record("ObjectCreated:Put", "images/busy.jpg", stack.put("images/busy.jpg"))
    )

    started = time.monotonic()
    response = indexer.lambda_handler(sqs_event(body), Context(TIMEOUT_S))

    assert time.monotonic() - started < 5  # not waited out
    assert response == {"batchItemFailures": []}
    [held] = queued()
    assert held.delayed_until / 1000 - time.time() >= 115  # comes back when imgix said (moto: ms)


def test_a_client_retry_waits_for_its_own_pacing_slot(stack: Stack):
    pacer = RateLimiter(per_second=2.0)  # one slot each 0.5 s
    client = ImgixClient(
        API_KEY,
        stack.emulator.base_url,
        max_retries=2,
        backoff_factor_s=0.001,
        pacers=Pacers(pacer, pacer, pacer, pacer),
    )
    stack.put("images/retry.jpg")
    stack.emulator.faults.script(["503"], route="add_asset")

    client.add_asset(stack.source_id, "retry.jpg")

    first, second = stack.emulator.calls_to("add_asset")
    assert (first.status, second.status) == (503, 200)
    assert second.at - first.at >= 0.45  # the retry took a slot, not just a 1 ms backoff


def test_pacing_never_sleeps_past_a_deadline():
    slept: list[float] = []
    slots = RateLimiter(per_second=0.1, clock=lambda: 100.0, sleep=slept.append)
    assert slots.acquire(max_wait_s=1.0) == 0.0
    with pytest.raises(SlotTooLate) as late:
        slots.acquire(max_wait_s=1.0)
    assert late.value.wait_s == 10.0 and slept == []
    assert slots.acquire() == 10.0  # the refused slot was not taken: the next is still 10 s off
