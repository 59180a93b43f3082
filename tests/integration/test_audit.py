"""`python -m ops audit`: a bucket and a Source that differ in every way, classified
exactly, through more than one page on both sides; --fix converges through the backfill
state machine (the real ASL on moto, the real backfill handler); a bounded run resumes."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest

from ops import audit
from ops.backfill import wait
from tests.harness.events import notification, s3_record, sqs_event
from tests.harness.machines import state_machine
from tests.harness.world import BUCKET, Stack, load_function


def run_audit(stack: Stack, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any]:
    capsys.readouterr()
    status = audit.main(
        [
            "--source-id", stack.source_id,
            "--secret-id", os.environ["IMGIX_API_KEY_SECRET"],
            "--api-base-url", stack.emulator.base_url,
            "--state-table", stack.local.state_table,
            "--rate-budget-table", os.environ["RATE_BUDGET_TABLE"],
            "--page-size", "2", "--s3-page-size", "2",  # several pages on both sides
            "--json",
            *extra,
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert out.out.startswith("["), (status, out.err[-2000:])
    [document] = json.loads(out.out)
    return status, document


def classes(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {f["key"]: (f["verdict"], f["reason"]) for f in document["findings"]}


@pytest.fixture
def drifted(stack: Stack, invoke: Any) -> Stack:
    """Indexed through the real indexer, then changed behind its back."""
    told = ["images/same.jpg", "images/été/π.jpg", "images/grown.jpg", "images/dropped.jpg",
            "images/gone.jpg", "images/purged.jpg"]  # fmt: skip
    records = [s3_record("ObjectCreated:Put", key, stack.put(key), 11) for key in told]
    invoke(sqs_event(*[notification(r) for r in records]))
    stack.s3.delete_object(Bucket=BUCKET, Key="images/purged.jpg")  # told: purged
    invoke(sqs_event(notification(s3_record("ObjectRemoved:Delete", "images/purged.jpg"))))
    stack.put("images/new one+1.jpg")  # never told
    stack.put("images/grown.jpg", b"image-bytes, and more")  # overwritten, never told
    with stack.emulator.account.lock:  # imgix lost what it was told
        del stack.emulator.account.assets[(stack.source_id, "dropped.jpg")]
    stack.s3.delete_object(Bucket=BUCKET, Key="images/gone.jpg")  # deleted, never told
    stack.put("images/folder/", b"")
    stack.put("elsewhere/outside.jpg")
    stack.emulator.reset_calls()
    return stack


def test_every_class_exactly_over_several_pages(drifted: Stack, capsys: pytest.CaptureFixture[str]):
    status, document = run_audit(drifted, capsys)

    assert status == 1  # missing and stale keys
    assert classes(document) == {
        "images/same.jpg": ("in sync", ""),
        "images/été/π.jpg": ("in sync", ""),
        "images/new one+1.jpg": ("missing", "imgix lists none"),
        "images/dropped.jpg": ("missing", "imgix lists none"),
        "images/grown.jpg": ("stale", "imgix holds 11 bytes, S3 21"),
        "images/folder/": ("skipped", "folder marker"),
        "images/gone.jpg": ("deleted at origin", "no purge recorded"),
        "images/purged.jpg": ("deleted at origin", "purge recorded"),
    }
    assert document["counts"] == {
        "in sync": 2, "missing": 2, "stale": 1, "skipped": 1, "deleted at origin": 2
    }  # fmt: skip
    listing = drifted.emulator.calls_to("list_assets")
    assert len(listing) == 3  # 5 assets, 2 a page
    assert {c.route for c in drifted.emulator.calls} == {"get_source", "list_assets"}


def test_fix_sends_the_missing_and_stale_keys_through_the_backfill_and_converges(
    drifted: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    backfill = load_function("backfill")
    machine = state_machine(
        monkeypatch, "backfill", "backfill.asl.json", "BackfillFunctionArn", backfill
    )
    sfn = boto3.client("stepfunctions")

    status, _ = run_audit(drifted, capsys, "--fix", "--backfill-arn", machine)
    assert status == 1
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    final = wait(sfn, execution["executionArn"], lambda _: None, interval_s=0.2, timeout_s=120)
    assert final["status"] == "SUCCEEDED", final
    # One call per key to fix: the one the state table said imgix held is told again.
    told = {c.origin_path: c.route for c in drifted.emulator.calls if c.route.endswith("_asset")}
    assert told == {
        "new one+1.jpg": "add_asset", "dropped.jpg": "refresh_asset", "grown.jpg": "refresh_asset"
    }  # fmt: skip

    status, document = run_audit(drifted, capsys)
    assert status == 0
    assert set(document["counts"]) == {"in sync", "skipped", "deleted at origin"}


def test_a_bounded_run_asks_for_its_own_keys_and_resumes_where_it_stopped(
    drifted: Stack, capsys: pytest.CaptureFixture[str]
):
    status, first = run_audit(drifted, capsys, "--limit", "3")
    assert list(classes(first)) == ["images/dropped.jpg", "images/folder/", "images/grown.jpg"]
    assert status == 1 and first["resume"] == "images/grown.jpg"
    # One get asset per key the indexer would index (not the folder marker); no listing.
    assert len(drifted.emulator.calls_to("get_asset")) == 2 and not drifted.emulator.calls_to(
        "list_assets"
    )
    _, rest = run_audit(drifted, capsys, "--limit", "10", "--resume", first["resume"])
    assert list(classes(rest)) == ["images/new one+1.jpg", "images/same.jpg", "images/été/π.jpg"]
    assert rest["resume"] is None  # the prefix ended before the limit


def test_a_deployed_stacks_name_is_enough(drifted: Stack, capsys: pytest.CaptureFixture[str]):
    """--stack reads the stack's outputs (template.yaml's SourceIds, ApiKeySecretArn,
    StateTableName, RateBudgetTableName): every Source it keeps, audited."""
    outputs = {
        "SourceIds": drifted.source_id,
        "ApiKeySecretArn": os.environ["IMGIX_API_KEY_SECRET"],
        "StateTableName": drifted.local.state_table,
        "RateBudgetTableName": os.environ["RATE_BUDGET_TABLE"],
    }
    stand_in = {  # the deployed stack's outputs, as CloudFormation reports them
        "Resources": {"Nothing": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(
        StackName="imgix-autoadder", TemplateBody=json.dumps(stand_in)
    )
    capsys.readouterr()
    status = audit.main(
        ["--stack", "imgix-autoadder", "--api-base-url", drifted.emulator.base_url, "--json"]
    )
    [document] = json.loads(capsys.readouterr().out)
    assert status == 1 and document["source_id"] == drifted.source_id
    assert classes(document)["images/purged.jpg"] == ("deleted at origin", "purge recorded")


def test_the_template_outputs_what_the_audit_reads():
    from tests.harness.template import TEMPLATE

    assert {"SourceIds", "ApiKeySecretArn", "StateTableName", "RateBudgetTableName",
            "BackfillStateMachineArn"} <= set(TEMPLATE["Outputs"])  # fmt: skip
