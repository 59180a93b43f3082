"""doctor: clear findings for a good setup and for each common misconfiguration."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest

from localdev.imgix_emulator import ASSET_BROWSE, ASSET_EDIT, PURGE, SOURCES, ImgixEmulator
from ops import doctor
from tests.harness.world import API_KEY, BUCKET, Stack


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = doctor.main(argv)
    return code, out.getvalue()


def base(stack: Stack, source_id: str) -> list[str]:
    return [
        "--secret-id",
        stack.local.secret_name,
        "--source-id",
        source_id,
        "--api-base-url",
        stack.emulator.base_url,
    ]


def test_a_good_setup_passes_every_check(stack: Stack):
    code, out = run(
        [*base(stack, stack.source_id), "--bucket", BUCKET, "--prefix", "/images/", "--ingest"]
    )
    assert code == 0, out
    assert "FAIL" not in out
    for check in (
        "Sources permission",
        "Source type",
        "bucket",
        "prefix",
        "Asset Manager Browse permission",
        "Asset Manager Edit permission",
        "Purge permission",
        "uploads allowed",
    ):
        assert f"[ok] {check}" in out
    assert "API_KEY" not in out and API_KEY not in out


def test_a_second_run_right_after_the_first_gives_the_same_answer(stack: Stack):
    """A repeated purge within 10 s may answer 409 (Purges), which is still a success."""
    stack.emulator.purge_api.repeat_answer = "409"
    first = run(base(stack, stack.source_id))
    second = run(base(stack, stack.source_id))
    assert first == second and first[0] == 0, second[1]
    assert [c.status for c in stack.emulator.calls_to("purge")] == [200, 409]


def test_probes_change_nothing_but_a_purge(stack: Stack):
    run(base(stack, stack.source_id))
    routes = {c.route for c in stack.emulator.calls}
    assert routes == {"get_source", "get_asset", "patch_asset", "purge"}
    assert stack.emulator.assets == {} and stack.emulator.sessions == {}


@pytest.mark.parametrize(
    ("granted", "failing"),
    [
        ({SOURCES, ASSET_BROWSE, PURGE}, {"Asset Manager Edit permission"}),
        ({SOURCES, ASSET_EDIT}, {"Purge permission"}),
        ({SOURCES, PURGE}, {"Asset Manager Browse permission", "Asset Manager Edit permission"}),
        ({ASSET_EDIT, PURGE}, {"Sources permission", "Purge permission"}),
    ],
)
def test_each_missing_permission_is_named_on_its_own(
    stack: Stack, granted: set[str], failing: set[str]
):
    stack.emulator.api_keys[API_KEY] = frozenset(granted)
    code, out = run(base(stack, stack.source_id))
    assert code == 1
    failed = {
        line.split("]")[1].split(":")[0].strip() for line in out.splitlines() if "[FAIL]" in line
    }
    assert failed == failing, out


def test_misconfigurations_are_named(stack: Stack):
    emulator: ImgixEmulator = stack.emulator
    wrong = emulator.create_source(
        "wrong", "other-bucket", prefix="img", enabled=False, allows_upload=False
    )
    code, out = run([*base(stack, wrong), "--bucket", BUCKET, "--prefix", "images", "--ingest"])
    assert code == 1
    assert "[FAIL] enabled: no" in out
    assert "[FAIL] bucket: Source reads 'other-bucket'" in out
    assert "[FAIL] prefix: Source prefix 'img', expected 'images'" in out
    assert "[FAIL] uploads allowed" in out


def test_missing_permissions_and_unknown_source(stack: Stack):
    stack.emulator.api_keys[API_KEY] = frozenset({SOURCES})
    code, out = run(base(stack, stack.source_id))
    assert code == 1
    assert "[FAIL] Asset Manager Browse permission: missing" in out
    assert "[FAIL] Asset Manager Edit permission: missing" in out
    assert "[FAIL] Purge permission: missing" in out

    code, out = run([*base(stack, "f" * 24), "--bucket", BUCKET])
    assert code == 1
    assert "no Source with this id" in out and stack.source_id in out  # suggests the right one


def test_webfolder_source_is_refused(stack: Stack):
    web = stack.emulator.create_source("web", "", deployment_type="webfolder")
    code, out = run(base(stack, web))
    assert code == 1 and "[FAIL] Source type: 'webfolder', must be 's3'" in out


def test_a_managed_source_that_drifted_from_the_stacks_intent_is_reported(stack: Stack):
    """Someone changed the stack-managed Source in the dashboard."""
    drifted = stack.emulator.create_source(
        "managed", BUCKET, prefix="elsewhere", subdomains=["other-demo"], allows_upload=False
    )
    intent = ["--bucket", BUCKET, "--prefix", "images", "--subdomain", "managed-demo", "--ingest"]
    code, out = run([*base(stack, drifted), *intent])
    assert code == 1
    assert "[FAIL] prefix: Source prefix 'elsewhere', expected 'images'" in out
    assert "[FAIL] subdomains: Source has other-demo, expected managed-demo" in out
    assert "[FAIL] uploads allowed" in out
    assert "[ok] bucket" in out
