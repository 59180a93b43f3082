"""Management API, Overview: Bearer auth, the error object, the status codes."""

from __future__ import annotations

import pytest

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixAuthError, ImgixError
from localdev.imgix_emulator import ROUTES, ImgixEmulator
from tests.harness.raw_http import raw

ERROR_FIELDS = {"detail", "id", "status", "title"}


def test_an_error_object_has_the_documented_fields(emulator: ImgixEmulator):
    answer = raw(emulator, "GET", "/api/v1/sources/" + "f" * 24)
    assert answer.status_code == 404
    (error,) = answer.json()["errors"]
    assert set(error) == ERROR_FIELDS
    assert error["status"] == "404" and error["id"]
    assert "data" not in answer.json()


def test_each_error_has_its_own_request_id(emulator: ImgixEmulator):
    ids = {raw(emulator, "GET", "/api/v1/nothing").json()["errors"][0]["id"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/purge"),
        ("DELETE", "/api/v1/sources/" + "a" * 24),
        ("PUT", "/api/v1/sources"),
        ("POST", "/api/v1/sources/" + "a" * 24 + "/assets/photo.jpg"),
        ("GET", "/api/v1/sources/" + "a" * 24 + "/upload/photo.jpg"),
    ],
)
def test_a_known_path_with_the_wrong_method_is_405(emulator: ImgixEmulator, method, path):
    """Overview, Errors: "405 Method not allowed (e.g. trying to POST on a GET endpoint)"."""
    answer = raw(emulator, method, path)
    assert answer.status_code == 405, answer.text
    assert answer.json()["errors"][0]["status"] == "405"
    assert answer.headers["Allow"]


def test_an_unknown_path_is_404(emulator: ImgixEmulator):
    assert raw(emulator, "GET", "/api/v1/nothing-here").status_code == 404


def test_missing_or_wrong_key_is_401(emulator: ImgixEmulator):
    assert raw(emulator, "GET", "/api/v1/sources", key="wrong").status_code == 401
    answer = raw(emulator, "GET", "/api/v1/sources", headers={"Authorization": "Basic x"})
    assert answer.status_code == 401


def test_the_client_reports_a_refused_key_as_an_auth_error(emulator: ImgixEmulator):
    client = ImgixClient("not-the-key", emulator.base_url, max_retries=0)
    with pytest.raises(ImgixAuthError) as caught:
        client.list_sources()
    assert caught.value.status == 401 and "not-the-key" not in str(caught.value)


def test_validation_failures_are_400_not_422(client: ImgixClient, source_id: str):
    """Overview, Errors: "400 Bad request / validation failed (e.g. missing a required
    field)"."""
    with pytest.raises(ImgixError) as caught:
        client.update_source(source_id, {"deployment": {"cache_ttl_value": 10}})
    assert caught.value.status == 400
    assert "cache_ttl_value" in caught.value.detail


def test_every_route_names_a_permission_and_a_limit_class():
    for route in ROUTES:
        if route.name != "presigned_put":
            assert route.permissions, route.name
            assert route.limit_class, route.name
