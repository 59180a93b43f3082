"""template.yaml: the EventBridge route for existing buckets, and least-privilege IAM."""

from __future__ import annotations

from typing import Any

from cfnlint.decode import decode

from tests.conftest import ROOT

TEMPLATE, _ = decode(str(ROOT / "template.yaml"))
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in RESOURCES.items():
        for policy in resource.get("Properties", {}).get("Policies", []) or []:
            if isinstance(policy, dict) and "Statement" in policy:
                for entry in policy["Statement"]:
                    conditional = isinstance(entry, dict) and "Fn::If" in entry
                    found.append((name, entry["Fn::If"][1] if conditional else entry))
    return found


def test_existing_buckets_are_routed_through_eventbridge_into_the_same_queue():
    rule = RESOURCES["OriginEventsRule"]
    assert rule["Condition"] == "UseEventBridge"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "OriginBucketName"}]
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    allowed = RESOURCES["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][1]
    assert allowed["Fn::If"][0] == "UseEventBridge"
    assert allowed["Fn::If"][1]["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["OriginEventsRule", "Arn"]
    }


def test_no_wildcard_resource_except_step_functions_log_delivery():
    wildcards = [(name, s["Sid"]) for name, s in statements() if s.get("Resource") == "*"]
    assert wildcards == [("UploadStateMachine", "StateMachineLogDelivery")]
    assert all(
        not str(a).endswith(":*")
        for _, s in statements()
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )


def test_sqs_visibility_is_at_least_six_times_the_function_timeout():
    timeout = TEMPLATE["Globals"]["Function"]["Timeout"]
    assert RESOURCES["EventsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout
    router_timeout = RESOURCES["UploadRouterFunction"]["Properties"]["Timeout"]
    assert RESOURCES["IngestQueue"]["Properties"]["VisibilityTimeout"] >= 6 * router_timeout
    events = RESOURCES["IndexerFunction"]["Properties"]["Events"]["ObjectEvents"]["Properties"]
    assert events["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
