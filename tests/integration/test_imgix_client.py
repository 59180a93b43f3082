"""The imgix client against the emulator over real HTTP, and configuration at cold start."""

from __future__ import annotations

import time

import pytest

from imgix_autoadder.core.config import ConfigError, load_settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError, ImgixNotFound, ImgixTransportError
from imgix_autoadder.imgix.paths import encode_origin_path
from imgix_autoadder.rate.pacing import Pacers, RateLimiter
from imgix_autoadder.sources.source_map import Source, SourceError, SourceMap
from localdev.imgix_emulator import PUBLISHED_LIMITS, ImgixEmulator
from tests.harness.world import API_KEY


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("a/b c.jpg", "a/b%20c.jpg"),
        ("../x", "%2E%2E/x"),
        ("./x", "%2E/x"),
        ("..x/.y", "..x/.y"),
        ("a?b#c", "a%3Fb%23c"),
        ("%2F", "%252F"),
        ("ü", "%C3%BC"),
    ],
)
def test_encode_origin_path(path: str, encoded: str):
    assert encode_origin_path(path) == encoded


def test_sources_list_get_and_filter(client: ImgixClient, emulator: ImgixEmulator):
    s3_id = emulator.create_source("photos", "bucket-a", prefix="/img/")
    emulator.create_source("web", "", deployment_type="webfolder")
    assert {s["id"] for s in client.list_sources(deployment_type="s3")} == {s3_id}
    assert len(client.list_sources()) == 2
    source = Source.from_api(client.get_source(s3_id))
    assert (source.bucket, source.prefix, source.type) == ("bucket-a", "img", "s3")
    assert "s3_secret_key" not in client.get_source(s3_id)["attributes"]["deployment"]


def test_patch_source_validation_error_carries_imgix_detail(
    client: ImgixClient, emulator: ImgixEmulator
):
    sid = emulator.create_source("photos", "bucket-a")
    with pytest.raises(ImgixError) as caught:
        client.update_source(sid, {"deployment": {"cache_ttl_value": 10, "imgix_subdomains": []}})
    assert caught.value.status == 400  # Overview: "400 Bad request / validation failed"
    assert "cache_ttl_value" in caught.value.detail and "imgix_subdomains" in caught.value.detail
    updated = client.update_source(sid, {"deployment": {"s3_prefix": "new"}})
    assert updated["attributes"]["deployment"]["s3_prefix"] == "new"


def test_wrong_key_is_a_permanent_401(emulator: ImgixEmulator):
    bad = ImgixClient("not-the-key", emulator.base_url, max_retries=0)
    with pytest.raises(ImgixError) as caught:
        bad.list_sources()
    assert caught.value.status == 401 and not caught.value.transient
    assert "not-the-key" not in str(caught.value)


def test_missing_asset_and_source_are_not_found(client: ImgixClient, emulator: ImgixEmulator):
    sid = emulator.create_source("photos", "bucket-a")
    with pytest.raises(ImgixNotFound):
        client.get_asset(sid, "nope.jpg")
    with pytest.raises(ImgixNotFound):
        client.get_source("0" * 24)


def test_add_requires_the_file_at_the_origin(client: ImgixClient, emulator: ImgixEmulator):
    import boto3

    boto3.client("s3").create_bucket(Bucket="bucket-a")
    sid = emulator.create_source("photos", "bucket-a", prefix="p")
    with pytest.raises(ImgixNotFound) as caught:
        client.add_asset(sid, "missing.jpg")
    assert "was not found at the origin" in caught.value.detail
    boto3.client("s3").put_object(Bucket="bucket-a", Key="p/there.jpg", Body=b"x")
    assert client.add_asset(sid, "there.jpg")["data"]["attributes"]["origin_path"] == "/there.jpg"
    assert client.get_asset(sid, "there.jpg")["attributes"]["file_size"] == 1
    assert emulator.assets[(sid, "there.jpg")].version == 1


def test_purge_rejects_foreign_domains(client: ImgixClient, emulator: ImgixEmulator):
    emulator.create_source("photos", "bucket-a", subdomains=["mine"])
    client.purge("https://mine.imgix.net/a.jpg")
    with pytest.raises(ImgixError) as caught:
        client.purge("https://someone-else.imgix.net/a.jpg")
    assert caught.value.status == 400  # Overview: "400 Bad request / validation failed"
    assert emulator.purges == ["https://mine.imgix.net/a.jpg"]


def test_persistent_503_becomes_a_transient_error_after_the_retries(
    client: ImgixClient, emulator: ImgixEmulator
):
    emulator.faults.script(["503"] * 3, route="list_sources")
    with pytest.raises(ImgixError) as caught:
        client.list_sources()
    assert caught.value.status == 503 and caught.value.transient
    assert len(emulator.calls_to("list_sources")) == 3  # first try + 2 retries


def test_persistent_resets_become_a_transport_error(client: ImgixClient, emulator: ImgixEmulator):
    emulator.faults.script(["reset"] * 3, route="list_sources")
    with pytest.raises(ImgixTransportError) as caught:
        client.list_sources()
    assert caught.value.transient


def test_emulator_enforces_the_published_default_limit(emulator: ImgixEmulator):
    emulator.rate_limits = dict(PUBLISHED_LIMITS)
    raw = ImgixClient(API_KEY, emulator.base_url, max_retries=0)
    statuses = []
    for _ in range(6):
        try:
            raw.list_sources()
            statuses.append(200)
        except ImgixError as exc:
            statuses.append(exc.status)
    assert statuses[:4] == [200] * 4 and 429 in statuses[4:]


def test_client_pacing_stays_under_the_published_limit(emulator: ImgixEmulator):
    emulator.rate_limits = dict(PUBLISHED_LIMITS)
    paced = ImgixClient(
        API_KEY, emulator.base_url, max_retries=0, pacers=Pacers.per_second(4 * 0.9, 10, 2, 10)
    )
    started = time.monotonic()
    for _ in range(8):
        paced.list_sources()  # would raise on a 429
    assert time.monotonic() - started >= 7 / 3.6 - 0.05


def test_source_map_prefixes_and_shared_buckets():
    def src(sid: str, bucket: str, prefix: str) -> Source:
        return Source(sid, sid, "s3", bucket, prefix, ("x",), True, True)

    sources = SourceMap([src("root", "b", ""), src("img", "b", "images")])
    assert [(t.source.id, t.origin_path) for t in sources.targets("b", "images/a.jpg")] == [
        ("root", "images/a.jpg"),
        ("img", "a.jpg"),
    ]
    assert [t.source.id for t in sources.targets("b", "imagesX/a.jpg")] == ["root"]
    assert sources.targets("other", "images/a.jpg") == []
    assert src("img", "b", "images").urls("a b.jpg") == ["https://x.imgix.net/a%20b.jpg"]


def test_source_map_refuses_non_s3_sources(client: ImgixClient, emulator: ImgixEmulator):
    web = emulator.create_source("web", "", deployment_type="webfolder")
    with pytest.raises(SourceError, match="webfolder"):
        SourceMap.load(client, [web])


def test_settings_report_every_problem_at_once():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"IMGIX_SOURCE_IDS": "abc", "HTTP_READ_TIMEOUT": "soon", "INGEST_DISPOSITION": "shred"},
            function="backfill",
        )
    message = str(caught.value)
    for fragment in (
        "STATE_TABLE",
        "IMGIX_API_KEY_SECRET",
        "'abc'",
        "HTTP_READ_TIMEOUT",
        "INGEST_DISPOSITION",
    ):
        assert fragment in message


def test_settings_pace_at_90_percent_of_the_published_limits():
    settings = load_settings({"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24})
    limits = (
        settings.default_per_second,
        settings.refresh_per_minute,
        settings.upload_per_second,
        settings.purge_per_second,
    )
    assert limits == pytest.approx((4 * 0.9, 10 * 0.9, 2 * 0.9, 10 * 0.9))
    assert settings.api_base_url == "https://api.imgix.com"


def test_pacing_divides_the_published_limits_among_concurrent_environments():
    settings = load_settings(
        {"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24, "IMGIX_PACING_DIVISOR": "2"}
    )
    assert (settings.default_per_second, settings.refresh_per_minute) == pytest.approx((1.8, 4.5))


class RecordingPacer(RateLimiter):
    """Unpaced, but remembers what the client told it about each call."""

    def __init__(self) -> None:
        super().__init__(0)
        self.late: list[float] = []

    def acquire(self, max_wait_s: float | None = None, late_s: float = 0.0) -> float:
        self.late.append(late_s)
        return 0.0


def test_a_call_that_will_open_a_connection_tells_the_pacer(
    emulator: ImgixEmulator, monkeypatch: pytest.MonkeyPatch
):
    """The first call, and the first after the connections idled past KEEPALIVE_S, may
    pay a handshake before reaching imgix; calls on a warm connection do not."""
    from imgix_autoadder.imgix import connections

    source_id = emulator.create_source("s", "b")
    pacer = RecordingPacer()
    client = ImgixClient(API_KEY, emulator.base_url, pacers=Pacers(pacer, pacer, pacer, pacer))
    client.get_source(source_id)
    client.get_source(source_id)
    monkeypatch.setattr(connections, "KEEPALIVE_S", 0.0)
    time.sleep(0.01)
    client.get_source(source_id)
    allowance = connections.NEW_CONNECTION_ALLOWANCE_S
    assert pacer.late == [allowance, 0.0, allowance]
