"""Purges (docs.imgix.com/apis/management/purges)."""

from __future__ import annotations

import pytest

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError
from localdev.imgix_emulator import ImgixEmulator
from tests.harness.raw_http import jsonapi, raw


def test_a_purge_answers_with_a_purge_id(emulator: ImgixEmulator, source_id: str):
    answer = raw(
        emulator,
        "POST",
        "/api/v1/purge",
        json=jsonapi(
            {"type": "purges", "attributes": {"url": "https://contract-demo.imgix.net/a.png"}}
        ),
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"data", "included", "jsonapi", "meta"}
    assert body["data"]["type"] == "purges"
    assert body["data"]["attributes"]["purge_id"] == body["data"]["id"]


@pytest.mark.parametrize("answer", ["409", "200"])
def test_a_repeat_within_10_seconds_is_a_success_either_way(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str, answer: str
):
    """ "a 409 status code may be returned ... Purge requests will still be successful"."""
    emulator.purge_api.repeat_answer = answer
    url = "https://contract-demo.imgix.net/again.png"
    client.purge(url)
    client.purge(url)  # raises on anything the client does not count as success
    assert [c.status for c in emulator.calls_to("purge")] == [200, int(answer)]
    assert emulator.purges == [url, url]


def test_a_timed_out_purge_retried_meets_the_409_and_succeeds(
    client: ImgixClient, emulator: ImgixEmulator, source_id: str
):
    emulator.faults.script(["timeout"], route="purge")
    client.purge("https://contract-demo.imgix.net/slow.png")
    first, retry = emulator.calls_to("purge")
    assert first.fault == "timeout" and retry.status == 409


def test_custom_domains_are_domains_of_the_account(client: ImgixClient, emulator: ImgixEmulator):
    emulator.create_source("cd", "b", subdomains=["cd-demo"], custom_domains=["img.example.com"])
    client.purge("https://img.example.com/a.png")
    with pytest.raises(ImgixError) as caught:
        client.purge("https://img.example.org/a.png")
    assert caught.value.status == 400  # "URL's domain must be one associated with the account"
