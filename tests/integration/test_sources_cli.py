"""python -m ops sources against the emulator: list, get, create, update, --wait; every
deployment checked before any request; secrets only from a file or Secrets Manager."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import boto3
import pytest

from localdev.imgix_emulator import ImgixEmulator
from ops import sources
from tests.harness.world import API_KEY

SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def key_secret(emulator: ImgixEmulator) -> str:
    boto3.client("secretsmanager").create_secret(
        Name="imgix/key", SecretString=json.dumps({"api_key": API_KEY})
    )
    return "imgix/key"


def run(emulator: ImgixEmulator, *argv: str) -> tuple[int, str, str]:
    command, rest = argv[0], argv[1:]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = sources.main(
            [command, "--secret-id", "imgix/key", "--api-base-url", emulator.base_url, *rest]
        )
    return code, out.getvalue(), err.getvalue()


def test_list_pages_through_every_page_filters_and_sorts(emulator: ImgixEmulator, key_secret):
    for i in range(7):
        emulator.create_source(f"s3-{i}", "bucket", subdomains=[f"s3-{i}-demo"])
    emulator.create_source("web", "", subdomains=["web-demo"], deployment_type="webfolder")
    code, out, _ = run(emulator, "list", "--page-size", "3", "--sort=-name", "--json")
    assert code == 0
    names = [s["attributes"]["name"] for s in json.loads(out)]
    assert names == ["web", *[f"s3-{i}" for i in reversed(range(7))]]
    pages = [c.raw_path for c in emulator.calls_to("list_sources")]
    assert len(pages) == 3 and "page%5Bnumber%5D=2" in pages[-1]
    code, out, _ = run(emulator, "list", "--type", "webfolder")
    assert code == 0 and "web-demo.imgix.net" in out and "s3-1" not in out
    code, out, _ = run(
        emulator, "list", "--webfolder-base-url", "https://images.example.com/", "--json"
    )
    assert [s["attributes"]["name"] for s in json.loads(out)] == ["web"]


def test_get_prints_a_table(emulator: ImgixEmulator, key_secret):
    source_id = emulator.create_source("photos", "bucket", prefix="img", subdomains=["ph-demo"])
    code, out, _ = run(emulator, "get", source_id)
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split()[:3] == ["id", "name", "type"]
    assert source_id in row and "photos" in row and "bucket/img" in row


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--type", "s3", "--subdomain", "a-demo"], "s3_bucket"),
        (["--type", "webfolder", "--subdomain", "a-demo"], "webfolder_base_url"),
        (["--type", "webproxy"], "imgix_subdomains"),
        (["--type", "webproxy", "--subdomain", "a.imgix.net"], "imgix_subdomains"),
        (["--type", "webproxy", "--subdomain", "a-demo", "--set", "cache_ttl_value=60"],
         "cache_ttl_value"),
        (["--type", "webproxy", "--subdomain", "a-demo", "--set", "cache_ttl_error=0"],
         "cache_ttl_error"),
        (["--type", "webproxy", "--subdomain", "a-demo", "--set", "cache_ttl_behavior=never"],
         "cache_ttl_behavior"),
        (["--type", "azure", "--subdomain", "a-demo", "--set", "azure_account=a",
          "--set", "azure_bucket=c", "--set", "azure_service_type=disk"], "azure_service_type"),
        (["--type", "s3_compatible", "--subdomain", "a-demo", "--set", "storage_provider=B2"],
         "storage_provider"),
    ],
)  # fmt: skip
def test_an_invalid_deployment_is_refused_before_any_request(
    emulator: ImgixEmulator, key_secret, argv: list[str], named: str
):
    code, _, err = run(emulator, "create", "--name", "new", *argv)
    assert code == 1 and named in err
    assert emulator.calls == []  # nothing was sent


def test_secret_fields_never_come_from_argv(emulator: ImgixEmulator, key_secret):
    code, _, err = run(
        emulator, "create", "--name", "n", "--type", "s3", "--subdomain", "a-demo",
        "--set", "s3_bucket=b", "--set", "s3_access_key=AK", "--set", f"s3_secret_key={SECRET_KEY}",
    )  # fmt: skip
    assert code == 1 and "s3_secret_key" in err and SECRET_KEY not in err
    assert emulator.calls == []


def test_create_from_a_credentials_file_waits_for_the_deploy(
    emulator: ImgixEmulator, key_secret, tmp_path: Path
):
    emulator.source_api.deploy_seconds = 0.5
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"s3_secret_key": SECRET_KEY}))
    code, out, err = run(
        emulator, "create", "--name", "made", "--type", "s3", "--subdomain", "made-demo",
        "--set", "s3_bucket=origin", "--set", "s3_access_key=AKIAEXAMPLE",
        "--set", "allows_upload=true", "--credentials-file", str(credentials),
        "--wait", "--poll-interval", "0.2", "--json",
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert made["attributes"]["deployment_status"] == "deployed"
    assert made["attributes"]["deployment"]["allows_upload"] is True
    assert "deployment_status: deploying" in err  # the progress line
    assert SECRET_KEY not in out + err
    stored = emulator.sources[made["id"]]["attributes"]["deployment"]
    assert stored["s3_secret_key"] == SECRET_KEY  # it reached imgix, and only imgix


def test_update_takes_credentials_from_secrets_manager(emulator: ImgixEmulator, key_secret):
    source_id = emulator.create_source("old", "bucket", subdomains=["old-demo"])
    boto3.client("secretsmanager").create_secret(
        Name="imgix/s3-reader", SecretString=json.dumps({"s3_secret_key": SECRET_KEY})
    )
    code, out, err = run(
        emulator, "update", source_id, "--name", "renamed", "--set", "s3_prefix=images",
        "--set", "s3_access_key=AKIANEW", "--credentials-secret-id", "imgix/s3-reader",
    )  # fmt: skip
    assert code == 0, err
    assert "renamed" in out and SECRET_KEY not in out + err
    deployment = emulator.sources[source_id]["attributes"]["deployment"]
    assert deployment["s3_prefix"] == "images" and deployment["s3_secret_key"] == SECRET_KEY


def test_a_deploy_that_never_ends_times_out(emulator: ImgixEmulator, key_secret):
    emulator.source_api.deploy_seconds = 3600
    source_id = emulator.create_source("slow", "bucket", subdomains=["slow-demo"])
    code, _, err = run(
        emulator, "update", source_id, "--set", "cache_ttl_value=3600",
        "--wait", "--timeout", "0.5", "--poll-interval", "0.2",
    )  # fmt: skip
    assert code == 1 and "not deployed after" in err


VALID = {
    "s3": {"s3_access_key": "AK", "s3_bucket": "b", "s3_secret_key": "SK"},
    "gcs": {"gcs_access_key": "AK", "gcs_bucket": "b", "gcs_secret_key": "SK"},
    "azure": {
        "azure_account": "a",
        "azure_bucket": "c",
        "azure_sas_string": "sas",
        "azure_service_type": "file",
    },
    "webfolder": {"webfolder_base_url": "https://images.example.com/"},
    "webproxy": {},
    "s3_compatible": {
        "access_key_id": "AK",
        "bucket_name": "b",
        "endpoint_url": "https://nyc3.digitaloceanspaces.com",
        "region": "nyc3",
        "secret_key": "SK",
        "storage_provider": "Wasabi",
    },
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_type_needs_exactly_its_required_fields(kind: str):
    """The reference's starred fields, per type, checked before any request."""
    from imgix_autoadder.sources import spec

    deployment = {"type": kind, "imgix_subdomains": ["x-demo"], **VALID[kind]}
    assert spec.problems(deployment, creating=True) == []
    for field in VALID[kind]:
        found = spec.problems({k: v for k, v in deployment.items() if k != field}, True)
        assert found == [f"{field} is required for {kind} Sources"]
    # An update checks only what it changes; a change of type needs the new type's fields.
    assert spec.problems({"cache_ttl_value": 3600}, creating=False) == []
    if VALID[kind]:
        assert spec.problems({"type": kind}, creating=False)
