"""Sources (https://docs.imgix.com/apis/management/sources) and the paging, sorting
and filtering of imgix-management-js's README."""

from __future__ import annotations

from typing import Any

import pytest

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError
from localdev.imgix_emulator import PUBLISHED_LIMITS, ImgixEmulator
from tests.harness.raw_http import jsonapi, raw

# The starred ("*Required for Source creation") fields of each type, with valid values.
VALID = {
    "s3": {"s3_access_key": "AK", "s3_bucket": "b", "s3_secret_key": "SK"},
    "gcs": {"gcs_access_key": "AK", "gcs_bucket": "b", "gcs_secret_key": "SK"},
    "azure": {
        "azure_account": "acct",
        "azure_bucket": "c",
        "azure_sas_string": "sas",
        "azure_service_type": "blob",
    },
    "webfolder": {"webfolder_base_url": "https://images.example.com/"},
    "webproxy": {},
    "s3_compatible": {
        "access_key_id": "AK",
        "bucket_name": "b",
        "endpoint_url": "https://s3.example.com",
        "region": "nyc3",
        "secret_key": "SK",
        "storage_provider": "DigitalOcean",
    },
}
SECRET_FIELDS = {"s3_secret_key", "gcs_secret_key", "azure_sas_string", "secret_key"}


def create(emulator: ImgixEmulator, deployment: dict[str, Any], name: Any = "new") -> Any:
    attributes = {"name": name, "deployment": deployment}
    return raw(
        emulator,
        "POST",
        "/api/v1/sources",
        json=jsonapi({"type": "sources", "attributes": attributes}),
        headers={"Content-Type": "application/vnd.api+json"},
    )


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_type_is_created_with_its_required_fields(emulator: ImgixEmulator, kind: str):
    deployment = {
        "type": kind,
        "imgix_subdomains": [f"new-{kind.replace('_', '-')}"],
        **VALID[kind],
    }
    answer = create(emulator, deployment)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"data", "included", "jsonapi", "meta"}
    attributes = body["data"]["attributes"]
    assert attributes["deployment_status"] == "deploying"  # "Create (and deploy)"
    assert not SECRET_FIELDS & set(attributes["deployment"])  # "Will not be returned"


@pytest.mark.parametrize(
    ("kind", "field"), [(kind, field) for kind, fields in sorted(VALID.items()) for field in fields]
)
def test_a_missing_required_field_is_400(emulator: ImgixEmulator, kind: str, field: str):
    deployment = {"type": kind, "imgix_subdomains": ["x-demo"], **VALID[kind]}
    del deployment[field]
    answer = create(emulator, deployment)
    assert answer.status_code == 400
    assert field in answer.json()["errors"][0]["detail"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"imgix_subdomains": []}, "imgix_subdomains"),
        ({"imgix_subdomains": ["foo.imgix.net"]}, "imgix_subdomains"),
        ({"cache_ttl_value": 1799}, "cache_ttl_value"),
        ({"cache_ttl_value": 31536001}, "cache_ttl_value"),
        ({"cache_ttl_error": 0}, "cache_ttl_error"),
        ({"cache_ttl_behavior": "forever"}, "cache_ttl_behavior"),
        ({"type": "ftp"}, "type"),
        ({"robots.txt": "maybe"}, "robots.txt"),
    ],
)
def test_documented_ranges_and_enums_are_enforced(emulator: ImgixEmulator, change, named):
    deployment = {"type": "s3", "imgix_subdomains": ["x-demo"], **VALID["s3"], **change}
    answer = create(emulator, deployment)
    assert answer.status_code == 400 and named in answer.json()["errors"][0]["detail"]


def test_a_storage_provider_outside_the_enum_is_refused(emulator: ImgixEmulator):
    deployment = {"type": "s3_compatible", "imgix_subdomains": ["x-demo"]}
    deployment |= {**VALID["s3_compatible"], "storage_provider": "Backblaze"}
    assert create(emulator, deployment).status_code == 400


def test_a_name_is_required_and_subdomains_are_unique(emulator: ImgixEmulator):
    deployment = {"type": "webproxy", "imgix_subdomains": ["taken-demo"]}
    assert create(emulator, deployment, name=None).status_code == 400
    assert create(emulator, deployment).status_code == 201
    clash = create(emulator, deployment)
    assert clash.status_code == 400 and "taken-demo" in clash.json()["errors"][0]["detail"]


def test_a_deploy_moves_from_deploying_to_deployed(client: ImgixClient, emulator: ImgixEmulator):
    now = [1_700_000_000.0]
    emulator.clock = lambda: now[0]
    emulator.source_api.deploy_seconds = 60
    source_id = emulator.create_source("deploys", "b", subdomains=["deploy-demo"])
    changed = client.update_source(source_id, {"deployment": {"cache_ttl_value": 3600}})
    assert changed["attributes"]["deployment_status"] == "deploying"
    assert client.get_source(source_id)["attributes"]["deployment_status"] == "deploying"
    now[0] += 61
    assert client.get_source(source_id)["attributes"]["deployment_status"] == "deployed"


def test_a_type_change_needs_the_new_types_fields(client: ImgixClient, emulator: ImgixEmulator):
    """ "if you update the Source type you will also need to provide the required
    parameters for that Source type"."""
    source_id = emulator.create_source("retype", "b", subdomains=["retype-demo"])
    with pytest.raises(ImgixError) as caught:
        client.update_source(source_id, {"deployment": {"type": "webfolder"}})
    assert caught.value.status == 400 and "webfolder_base_url" in caught.value.detail


def test_list_pages_filters_and_sorts(client: ImgixClient, emulator: ImgixEmulator):
    for name in ("charlie", "alpha", "bravo"):
        emulator.create_source(name, "b", subdomains=[f"{name}-demo"])
    emulator.create_source("web", "", subdomains=["web-demo"], deployment_type="webfolder")

    def names(query: str) -> list[str]:
        answer = raw(emulator, "GET", "/api/v1/sources?" + query)
        assert answer.status_code == 200, answer.text
        return [s["attributes"]["name"] for s in answer.json()["data"]]

    assert names("sort=name") == ["alpha", "bravo", "charlie", "web"]
    assert names("sort=-name") == ["web", "charlie", "bravo", "alpha"]
    assert names("sort=name&page[number]=0&page[size]=2") == ["alpha", "bravo"]
    assert names("sort=name&page[number]=1&page[size]=2") == ["charlie", "web"]
    assert names("sort=name&page[number]=2&page[size]=2") == []
    assert names("filter[deployment.type]=webfolder") == ["web"]
    assert names("filter[deployment.webfolder_base_url]=https://images.example.com/") == ["web"]
    assert raw(emulator, "GET", "/api/v1/sources?sort=colour").status_code == 400
    assert [s["attributes"]["name"] for s in client.list_sources("webfolder")] == ["web"]


def test_create_and_update_share_nothing_with_the_default_limit(emulator: ImgixEmulator):
    """API Rate Limits: create source 60 per hour, update source 60 per hour."""
    emulator.rate_limits = dict(PUBLISHED_LIMITS)
    assert PUBLISHED_LIMITS["create_source"] == (60, 3600.0)
    assert PUBLISHED_LIMITS["update_source"] == (60, 3600.0)
    emulator.limits.limits["create_source"] = (2, 3600.0)  # the same rule, smaller
    deployment = {"type": "webproxy", "imgix_subdomains": ["a-demo"]}
    assert create(emulator, deployment).status_code == 201
    assert create(emulator, {**deployment, "imgix_subdomains": ["b-demo"]}).status_code == 201
    refused = create(emulator, {**deployment, "imgix_subdomains": ["c-demo"]})
    assert refused.status_code == 429
    assert raw(emulator, "GET", "/api/v1/sources").status_code == 200  # other classes unaffected
