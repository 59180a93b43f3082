"""Fixtures only: moto with IAM from the template, the imgix emulator, the stack, the indexer.
Helpers live in tests/harness."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from imgix_autoadder import wiring
from imgix_autoadder.imgix.client import ImgixClient
from localdev import moto_speedups
from localdev.imgix_emulator import ImgixEmulator, S3Origin
from localdev.provision import provision
from tests.harness.template_iam import (
    admin_session,
    enforce_iam,
    function_identities,
    shared_models_session,
    state_machine_identity,
)
from tests.harness.world import (
    API_KEY,
    BUCKET,
    CUSTOM_DOMAINS,
    MOTO_CONFIG,
    PREFIX,
    REGION,
    SUBDOMAINS,
    TEST_CLIENT_ENV,
    TEST_READ_TIMEOUT_S,
    FakeContext,
    Invoke,
    Stack,
    load_function,
    template_parameters,
)

# moto's SQS walks the whole queue per message received; the patch keeps its answers.
moto_speedups.apply()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto with IAM enforced: the test itself acts as an administrator, and each handler
    as its own function's role (see `stack`), so a call the template does not allow fails."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "imgix-autoadder",
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        admin = admin_session().get_credentials()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_key)
        # The next client reads them (and the process's shared service models).
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", shared_models_session())
        with enforce_iam():
            yield


@pytest.fixture
def emulator(aws: None) -> Iterator[ImgixEmulator]:
    # Published limits off by default so tests run fast; tests of limits switch them on.
    emu = ImgixEmulator(api_key=API_KEY, origin=S3Origin(boto3.client("s3")), rate_limits=None)
    # A scripted "timeout" holds its answer twice as long as the client waits (TEST_CLIENT_ENV):
    # the timeout path comes from this delay, never from a race with a busy CPU.
    emu.timeout_delay_s = 2 * TEST_READ_TIMEOUT_S
    with emu:
        yield emu


@pytest.fixture
def client(emulator: ImgixEmulator) -> ImgixClient:
    """The project's client against the emulator, unpaced, with the tests' timeouts."""
    return ImgixClient(
        API_KEY,
        emulator.base_url,
        read_timeout_s=TEST_READ_TIMEOUT_S,
        max_retries=2,
        backoff_factor_s=0.01,
        retry_after_max_s=2,
    )


@pytest.fixture
def origin_versioned() -> bool:
    """template.yaml creates the origin bucket versioned; an existing bucket may not be
    (override with @pytest.mark.parametrize("origin_versioned", [False]))."""
    return True


@pytest.fixture
def stack(
    emulator: ImgixEmulator, monkeypatch: pytest.MonkeyPatch, origin_versioned: bool
) -> Stack:
    # S3 notifications off: tests hand the handler exact, real-shaped events themselves.
    local = provision(BUCKET, API_KEY, notifications=False, versioned=origin_versioned)
    source_id = emulator.create_source(
        "origin", BUCKET, prefix=PREFIX, subdomains=SUBDOMAINS, custom_domains=CUSTOM_DOMAINS
    )
    for name, value in {**local.env(emulator.base_url, [source_id]), **TEST_CLIENT_ENV}.items():
        monkeypatch.setenv(name, value)
    # Each function reaches AWS with exactly the permissions template.yaml grants it.
    parameters = template_parameters(local, source_id)
    identities = function_identities(parameters)
    state_machine_identity(parameters)
    monkeypatch.setattr(wiring, "aws_session", lambda function: identities[function])
    return Stack(emulator, source_id, local, boto3.client("s3"), boto3.client("sqs"), identities)


@pytest.fixture
def indexer(stack: Stack) -> ModuleType:
    return load_function("indexer")


@pytest.fixture
def invoke(indexer: ModuleType) -> Invoke:
    def run(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = indexer.lambda_handler(event, FakeContext())
        return result

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, longest first (`@pytest.mark.long(seconds)`, as measured here),
    each followed by a short one: with `--dist load --maxschedchunk 2`
    every xdist worker starts on a different long test, and they end while the short ones
    run instead of one of them ending the run alone."""

    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return float(marker.args[0]) if marker else 0.0

    long = sorted((item for item in items if seconds(item)), key=seconds, reverse=True)
    short = [item for item in items if not seconds(item)]
    paired = [item for pair in zip(long, short, strict=False) for item in pair]
    items[:] = paired + long[len(short) :] + short[len(long) :]
