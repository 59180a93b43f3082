"""An imgix outage (issue #24): six simulated hours of 503s, resets or timeouts end with
nothing dead-lettered and nothing lost; the stack's breaker keeps the calls to a few; the
backlog drains at the limit once imgix is back.

SQS is moto, with the template's redrive policy (maxReceiveCount 5): a record failed back
to SQS spends a receive, a deferred one is a new message with a fresh count. Hours pass
by SimulatedTime, which moves the breaker's clock and moto's delays together.
"""

from __future__ import annotations

import json
from collections import Counter
from types import ModuleType
from typing import Any

import pytest
from moto.core.utils import unix_time_millis

from imgix_autoadder.rate.breaker import BASE_OPEN_S, MAX_OPEN_S, OUTAGE_THRESHOLD
from localdev.imgix_emulator import PUBLISHED_LIMITS
from localdev.sqs_source import drain
from tests.harness.events import notification, queued, s3_record
from tests.harness.sim_time import SimulatedTime
from tests.harness.world import PREFIX, FakeContext, Stack, load_function

OUTAGE_S = 6 * 3600
KEYS = 3
READ_TIMEOUT_S = 0.5  # each scripted timeout costs the client this much real time


@pytest.fixture
def stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("HTTP_READ_TIMEOUT", str(READ_TIMEOUT_S))
    stack.emulator.timeout_delay_s = 2 * READ_TIMEOUT_S
    return stack


class Deliveries:
    """Lambda's event source mapping over the events queue, keeping what SQS counted."""

    def __init__(self, stack: Stack, handler: Any) -> None:
        self.stack, self.handler = stack, handler
        self.receive_counts: Counter[int] = Counter()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in event["Records"]:
            self.receive_counts[int(record["attributes"]["ApproximateReceiveCount"])] += 1
        result: dict[str, Any] = self.handler(event, context)
        return result

    def run_for(self, sim: SimulatedTime, seconds: float) -> None:
        """Deliver, and let simulated time pass to each deferred record's return, until
        `seconds` have passed (the deliveries due then are left for the next run)."""
        end = sim.offset_s + seconds
        while self._deliver():
            sim.skip_to_next_delivery(self._queue)
            if sim.offset_s > end:
                return

    def run_until_settled(self, sim: SimulatedTime, limit_s: float) -> float:
        """Deliver until the queue holds nothing (or `limit_s` passed); returns the
        simulated seconds it took."""
        start = sim.offset_s
        while self._deliver() and sim.offset_s - start <= limit_s:
            sim.skip_to_next_delivery(self._queue)
        return sim.offset_s - start

    def pending_keys(self) -> list[str]:
        """The S3 keys of the records still in the queue, delayed or not."""
        return sorted(
            record["s3"]["object"]["key"]
            for message in queued(self._queue)
            for record in json.loads(message.body).get("Records", [])
        )

    @property
    def _queue(self) -> str:
        return self.stack.local.queue_url.rsplit("/", 1)[1]

    def _deliver(self) -> bool:
        """Deliver what is visible; True while the queue still holds records. (A record
        whose delay ran out in real time while others were handled is visible, not
        delayed: it is delivered on the next pass, not taken for an empty queue.)"""
        for _ in range(1000):
            stats = drain(
                self.stack.sqs, self.stack.local.queue_url, self, FakeContext(), 10, 10_000, 0
            )
            held = queued(self._queue)
            if (
                stats.delivered
                or not held
                or any(m.delayed_until > unix_time_millis() for m in held)
            ):
                return bool(held)
        raise AssertionError("the queue holds records that never become visible")


def send_puts(stack: Stack, count: int, name: str = "outage") -> list[str]:
    keys = []
    for i in range(count):
        key = f"{PREFIX}/{name}/{i}.jpg"
        etag = stack.put(key)
        stack.sqs.send_message(
            QueueUrl=stack.local.queue_url,
            MessageBody=notification(
                s3_record("ObjectCreated:Put", key, etag, 11, sequencer=f"{0x10 + i:016X}")
            ),
        )
        keys.append(key)
    return keys


def probes_in(seconds: float) -> int:
    """Half-open probes the breaker allows in an outage this long (its openings double)."""
    probes, elapsed, open_s = 0, 0.0, BASE_OPEN_S
    while elapsed < seconds:
        elapsed += open_s
        probes += 1
        open_s = min(MAX_OPEN_S, 2 * open_s)
    return probes


@pytest.mark.long(25)
@pytest.mark.parametrize("kind", ["503", "reset", "timeout"])
def test_six_hours_of_outage_dead_letter_nothing_and_end_with_imgix_matching_s3(
    stack: Stack, indexer: ModuleType, monkeypatch: pytest.MonkeyPatch, kind: str
):
    sim = SimulatedTime(monkeypatch)
    emulator = stack.emulator
    keys = send_puts(stack, KEYS)
    emulator.faults.randomly(1.0, (kind,), routes={"add_asset"})
    deliveries = Deliveries(stack, indexer.lambda_handler)

    deliveries.run_for(sim, OUTAGE_S)

    during = emulator.calls_to("add_asset")
    assert sim.offset_s >= OUTAGE_S
    assert stack.dlq_messages() == []
    # Without the breaker each record spends its retries on every receive (5 receives, 6
    # attempts each, then the DLQ: 90 calls in half an hour). With it: the calls that open
    # it, then one probe per opening.
    assert len(during) <= OUTAGE_THRESHOLD + KEYS + probes_in(OUTAGE_S), Counter(
        c.fault for c in during
    )
    # No record walked towards the DLQ: at most the first delivery was failed back.
    assert max(deliveries.receive_counts) <= 2, deliveries.receive_counts
    assert deliveries.pending_keys() == sorted(keys)  # each still held back, none lost

    emulator.faults.clear()
    took_s = deliveries.run_until_settled(sim, 4 * MAX_OPEN_S)

    # Back within one opening of the breaker (a deferred record returns within one).
    assert took_s <= MAX_OPEN_S + 30, (took_s, deliveries.pending_keys())
    assert stack.dlq_messages() == []
    for key in keys:
        assert (stack.source_id, key[len(PREFIX) + 1 :]) in emulator.assets
    after = emulator.calls_to("add_asset")[len(during) :]
    assert [c.status for c in after] == [200] * KEYS  # the probe among them: one call a key


def test_the_breaker_is_shared_one_environment_opens_it_and_the_other_calls_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    SimulatedTime(monkeypatch)
    first, second = load_function("indexer"), load_function("indexer")  # two environments
    emulator = stack.emulator
    emulator.faults.randomly(1.0, ("503",), routes={"add_asset"})
    send_puts(stack, 2, "first")
    drain(stack.sqs, stack.local.queue_url, first.lambda_handler, FakeContext(), 10, 10, 0)
    opened_after = len(emulator.calls_to("add_asset"))
    assert opened_after >= OUTAGE_THRESHOLD

    send_puts(stack, 4, "second")
    stack.sqs.send_message(QueueUrl=stack.local.queue_url, MessageBody="not json")
    drain(stack.sqs, stack.local.queue_url, second.lambda_handler, FakeContext(), 10, 10, 0)

    assert len(emulator.calls_to("add_asset")) == opened_after  # not one call from the second
    # The breaker never hides a poison record: it is dead-lettered at once, with its reason.
    [dead] = stack.dlq_messages()
    assert dead["Body"] == "not json"
    assert "not JSON" in dead["MessageAttributes"]["FailureReason"]["StringValue"]


@pytest.mark.long(20)
def test_after_an_outage_the_backlog_drains_at_the_published_limit_without_a_herd_of_429s(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    limit, _window_s = PUBLISHED_LIMITS["default"]
    monkeypatch.setenv("IMGIX_DEFAULT_PER_SECOND", str(limit))
    fresh = load_function("indexer")  # reads the limit at its cold start
    sim = SimulatedTime(monkeypatch)
    emulator = stack.emulator
    emulator.rate_limits = dict(PUBLISHED_LIMITS)
    backlog = 24
    send_puts(stack, backlog, "backlog")
    emulator.faults.randomly(1.0, ("503",), routes={"add_asset"})
    deliveries = Deliveries(stack, fresh.lambda_handler)
    deliveries.run_for(sim, 600)
    emulator.faults.clear()
    start = len(emulator.calls)

    took_s = deliveries.run_until_settled(sim, 4 * MAX_OPEN_S)

    assert took_s <= MAX_OPEN_S + 30, (took_s, deliveries.pending_keys())
    drained = [c for c in emulator.calls[start:] if c.route == "add_asset"]
    assert [c.status for c in drained].count(200) == backlog
    # A herd would be a 429 per environment or per record once imgix is back. A lone 429 is
    # the host's doing: a thread held up between its grant and its send (a loaded CI machine)
    # arrives beside the next one; the client retries it in its own paced slot.
    refused = [c.origin_path for c in emulator.calls[start:] if c.status == 429]
    assert len(refused) <= 2, refused
    assert stack.dlq_messages() == []
