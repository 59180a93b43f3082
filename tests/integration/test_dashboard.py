"""The stack's CloudWatch dashboard (template.yaml `Dashboard`) plots only what is emitted:
every metric it and the alarms name is emitted by the code under that name, namespace and
dimensions, in the runs that produce it. The body is valid JSON whatever the conditions.

The happy path's metrics are checked on the README's main job (test_local_run.py, with
metrics on); the trouble metrics (429s, deferrals, outages, retries) and the backfill's
here, through the real handlers against moto and the emulator."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from imgix_autoadder.rate.breaker import MAX_OPEN_S, OUTAGE_THRESHOLD, PROBE_S
from tests.harness.emf import Emitted, emitted
from tests.harness.events import notification, s3_record, sqs_event
from tests.harness.sim_time import SimulatedTime
from tests.harness.template import RESOURCES
from tests.harness.world import BUCKET, PREFIX, FakeContext, Stack, load_function

OURS = "ImgixAutoadder"
SERVICE = (("service", "imgix-autoadder"),)
HAPPY_PATH = {"Added", "Refreshed", "Purged", "Skipped", "DirectUploads", "Uploaded",
              "UploadSessionsStarted", "EventAge", "ImgixCallsDefault", "ImgixCallsRefresh",
              "ImgixCallsPurge", "ImgixCallsUpload"}  # fmt: skip
TROUBLE = {"ImgixThrottled", "Deferred", "ImgixUnavailable", "Failed", "ApiKeyRejected",
           "BackfillDone", "BackfillSkipped"}  # fmt: skip
# The scheduled audit's, and its get asset calls (test_scheduled_audit.py checks them).
AUDIT = {"AssetsMissing", "AssetsStale", "AssetsDeletedAtOrigin", "ImgixCallsGetAsset"}
# What each AWS namespace's dimension names (the resource it points at must exist).
AWS_DIMENSIONS = {
    "AWS/SQS": ("QueueName", "AWS::SQS::Queue"),
    "AWS/States": ("StateMachineArn", "AWS::Serverless::StateMachine"),
    "AWS/Lambda": ("FunctionName", "AWS::Serverless::Function"),
}


CONDITIONS = {"IngestDeadLetterMetric": "ingest", "UploadSessionWidget": "ingest",
              "AuditWidget": "audit"}  # fmt: skip


def dashboard_body(ingest: bool, audit: bool = True) -> dict[str, Any]:
    """The body as CloudFormation would substitute it, with EnableIngest and ScheduledAudit
    on or off; resource references become `<Logical>` or `<Logical.Attribute>`."""
    template, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    on = {"ingest": ingest, "audit": audit}
    values = {}
    for name, value in variables.items():
        _, when_on, when_off = value["Fn::If"]
        chosen = when_on if on[CONDITIONS[name]] else when_off
        if isinstance(chosen, dict):
            chosen = chosen["Fn::Sub"]
            if isinstance(chosen, list):  # its own variables: a period from the mapping
                chosen = chosen[0].replace("${Period}", "86400")
        values[name] = chosen
    text = template
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    text = text.replace("${AWS::Region}", "us-east-1")
    return dict(json.loads(re.sub(r"\$\{([A-Za-z0-9.]+)\}", r"<\1>", text)))


def dashboard_metrics(body: dict[str, Any]) -> list[list[Any]]:
    metrics = []
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], dict):
                continue  # an expression over the others
            metrics.append([part for part in line if not isinstance(part, dict)])
    return metrics


def alarm_metrics() -> list[list[Any]]:
    found = []
    for resource in RESOURCES.values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        stats = [
            m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m
        ]
        for metric in stats or [properties]:
            line = [metric["Namespace"], metric["MetricName"]]
            for dimension in metric.get("Dimensions", []):
                value = dimension["Value"]
                if isinstance(value, dict):  # !Ref X or !GetAtt X.QueueName
                    target = value.get("Ref") or ".".join(value["Fn::GetAtt"])
                    value = f"<{target}>"
                line += [dimension["Name"], value]
            found.append(line)
    return found


def ours(lines: list[list[Any]]) -> set[Emitted]:
    return {
        (OURS, line[1], tuple(sorted(zip(line[2::2], line[3::2], strict=True))))
        for line in lines
        if line[0] == OURS
    }


def sim_past_the_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = SimulatedTime(monkeypatch)
    sim.offset_s += MAX_OPEN_S + PROBE_S


def test_the_body_is_json_with_or_without_ingest_and_names_only_known_metrics():
    for ingest, audit in ((True, True), (False, False), (True, False), (False, True)):
        lines = dashboard_metrics(dashboard_body(ingest, audit)) + alarm_metrics()
        assert {name for _, name, _ in ours(lines)} <= HAPPY_PATH | TROUBLE | AUDIT
        assert all(dimensions == SERVICE for _, _, dimensions in ours(lines))
        for line in lines:
            if line[0] == OURS:
                continue
            dimension, resource_type = AWS_DIMENSIONS[line[0]]
            assert line[2] == dimension, line
            logical = line[3].strip("<>").split(".")[0]
            assert RESOURCES[logical]["Type"] == resource_type, line
    with_ingest = ours(dashboard_metrics(dashboard_body(True)) + alarm_metrics())
    # Every metric the two runs check is on the dashboard or an alarm (no silent leftovers).
    assert {name for _, name, _ in with_ingest} == HAPPY_PATH | TROUBLE | AUDIT
    widgets = dashboard_body(True, True)["widgets"]
    assert len(widgets) == len(dashboard_body(False, False)["widgets"]) + 2  # uploads, audit


def test_the_trouble_and_backfill_metrics_are_emitted_as_the_dashboard_names_them(
    stack: Stack, indexer: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    emulator, retries = stack.emulator, int(os.environ["HTTP_MAX_RETRIES"])
    backfill = load_function("backfill")
    for key in (f"{PREFIX}/dash/listed.jpg", "elsewhere/listed.jpg"):
        etag = stack.put(key)
        listed = {"Key": key, "ETag": f'"{etag}"', "Size": 11, "LastModified": "2026-12-01"}
        backfill.lambda_handler({"bucket": BUCKET, "object": listed}, FakeContext())

    def event_for(key: str) -> dict[str, Any]:
        return sqs_event(notification(s3_record("ObjectCreated:Put", key, stack.put(key), 11)))

    # 429s past the client's retries: deferred. Then 503s: retried by SQS (Failed), until
    # the breaker opens (ImgixUnavailable) on the next delivery.
    emulator.faults.script(["429"] * (retries + 1), route="add_asset")
    indexer.lambda_handler(event_for(f"{PREFIX}/dash/throttled.jpg"), FakeContext())
    emulator.faults.script(["503"] * OUTAGE_THRESHOLD, route="add_asset")
    down = event_for(f"{PREFIX}/dash/down.jpg")
    for _ in range(2):
        indexer.lambda_handler(down, FakeContext())
    emulator.faults.clear()
    sim_past_the_breaker(monkeypatch)
    # A key imgix refuses, even after reading it again: deferred, for an operator.
    emulator.faults.script(["401", "401"], route="add_asset")
    indexer.lambda_handler(event_for(f"{PREFIX}/dash/refused.jpg"), FakeContext())

    seen = emitted(capsys.readouterr().out)
    expected = ours(dashboard_metrics(dashboard_body(True)) + alarm_metrics())
    trouble = {metric for metric in expected if metric[1] in TROUBLE}
    assert trouble - seen == set()
