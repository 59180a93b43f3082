"""API Rate Limits (docs.imgix.com/references/api-rate-limits): 429 with no documented
Retry-After header; the client backs off without one and takes one when present."""

from __future__ import annotations

import time

from imgix_autoadder.imgix.client import ImgixClient
from localdev.imgix_emulator import PUBLISHED_LIMITS, ImgixEmulator
from tests.harness.raw_http import raw
from tests.harness.world import API_KEY


def test_the_published_limits():
    assert PUBLISHED_LIMITS == {
        "default": (4, 1.0),
        "create_source": (60, 3600.0),
        "update_source": (60, 3600.0),
        "get_asset": (10, 1.0),
        "refresh": (10, 60.0),
        "upload": (2, 1.0),
        "purge": (10, 1.0),
    }


def test_a_429_carries_no_retry_after_header(emulator: ImgixEmulator):
    emulator.rate_limits = dict(PUBLISHED_LIMITS)
    # Five in one second are one too many; on a loaded machine five requests may take
    # longer than that, so keep asking until the limit answers (it must, well before 20).
    answers = []
    while len(answers) < 20 and (not answers or answers[-1].status_code != 429):
        answers.append(raw(emulator, "GET", "/api/v1/sources"))
    refused = answers[-1]
    assert len(answers) >= 5  # never before the limit
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert refused.json()["errors"][0]["status"] == "429"


def test_the_client_backs_off_without_retry_after(emulator: ImgixEmulator):
    emulator.faults.script(["429", "429"], route="list_sources")
    client = ImgixClient(API_KEY, emulator.base_url, max_retries=2, backoff_factor_s=0.01)
    client.list_sources()
    assert [c.status for c in emulator.calls_to("list_sources")] == [429, 429, 200]


def test_the_client_takes_retry_after_when_present(emulator: ImgixEmulator):
    emulator.limits.retry_after_header = True
    emulator.faults.script(["429"], route="list_sources")
    client = ImgixClient(API_KEY, emulator.base_url, max_retries=1, retry_after_max_s=2)
    client.list_sources()
    first, second = emulator.calls_to("list_sources")
    assert second.at - first.at >= 0.9  # Retry-After: 1


def test_the_listen_backlog_takes_a_burst_of_connections(emulator: ImgixEmulator):
    """Python's default backlog of 5 stalls bursts of new connections ~1 s each."""
    assert emulator._server.request_queue_size >= 128


def test_both_readings_of_the_undocumented_window():
    """The page gives a count per second, not how it is counted: at most 4 in any second
    (sliding), or 4 per aligned second (fixed), which lets 8 through across an edge."""
    from localdev.imgix_emulator.limits import RateLimits

    now = [10.9]
    sliding = RateLimits({"default": (4, 1.0)}, clock=lambda: now[0])
    fixed = RateLimits({"default": (4, 1.0)}, clock=lambda: now[0], window="fixed")

    def taken(limits: RateLimits) -> int:
        count = 0
        for at in (10.90, 10.92, 10.94, 10.96, 11.00, 11.02, 11.04, 11.06):
            now[0] = at
            try:
                limits.take("default")
                count += 1
            except Exception:
                pass
        return count

    assert (taken(sliding), taken(fixed)) == (4, 8)


def test_the_bench_network_delays_arrivals_before_they_are_counted(emulator: ImgixEmulator):
    """Test machinery: a first request on a connection pays the handshake, later ones
    only the jitter, and the rate limit counts them as they arrive."""
    from localdev.imgix_emulator.network import Network

    emulator.network = Network(jitter_s=0.0, handshake_s=0.2)
    client = ImgixClient(API_KEY, emulator.base_url)
    sent = time.monotonic()
    client.list_sources()
    client.list_sources()
    first, second = emulator.calls_to("list_sources")
    assert first.at - sent >= 0.2  # counted only once the handshake was over
    assert second.at - first.at < 0.15  # the second reused the connection
