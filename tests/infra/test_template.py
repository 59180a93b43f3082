"""template.yaml: the EventBridge route for existing buckets, and least-privilege IAM."""

from __future__ import annotations

import json
from typing import Any

from imgix_autoadder.ingest.job import ImgixUnavailableError
from localdev.imgix_emulator import SESSION_LIFETIME_S
from tests.harness.template import RESOURCES, TEMPLATE
from tests.harness.world import ROOT


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
    # Tag changes only with TagFields on (a tag event costs a GetObjectTagging).
    assert pattern["detail-type"] == {
        "Fn::If": [
            "MapsTags",
            ["Object Created", "Object Deleted", "Object Tags Added", "Object Tags Deleted"],
            ["Object Created", "Object Deleted"],
        ]
    }
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


# -- figures that depend on each other -------------------------------------------------------
def default_settings() -> Any:
    from imgix_autoadder.core.config import load_settings

    return load_settings({"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24})


def test_the_indexer_figures_agree_with_each_other():
    from imgix_autoadder.core.limits import (
        PACING_HEADROOM,
        PUBLISHED_REFRESH_PER_MINUTE,
        SQS_MAX_DELAY_S,
    )

    settings = default_settings()
    timeout = TEMPLATE["Globals"]["Function"]["Timeout"]
    queue = RESOURCES["EventsQueue"]["Properties"]
    source = RESOURCES["IndexerFunction"]["Properties"]["Events"]["ObjectEvents"]["Properties"]
    window = source["MaximumBatchingWindowInSeconds"]
    # AWS: visibility at least 6x the function timeout plus the batching window.
    assert queue["VisibilityTimeout"] >= 6 * timeout + window
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 5  # AWS: at least 5
    # One attempt always fits between the start and the reserve; a pacing wait too.
    assert (
        timeout > settings.handler_reserve_s + settings.connect_timeout_s + settings.read_timeout_s
    )
    assert timeout > settings.handler_reserve_s + settings.max_pacing_wait_s
    # Even at the largest MaxConcurrency a deferred refresh can wait for its next slot.
    most = TEMPLATE["Parameters"]["MaxConcurrency"]["MaxValue"]
    per_env_per_minute = PUBLISHED_REFRESH_PER_MINUTE * PACING_HEADROOM / (most + 1)
    assert 60 / per_env_per_minute <= SQS_MAX_DELAY_S
    # A batch of 10 keys gets 10 workers: none waits for another's pacing slot.
    from imgix_autoadder.indexing.indexer import Indexer

    assert Indexer.workers_for(settings.max_parallel_requests) >= source["BatchSize"]


def upload_states() -> dict[str, Any]:
    import json

    document = json.loads((ROOT / "statemachine" / "upload_session.asl.json").read_text())
    states: dict[str, Any] = document["States"]
    return states


def test_upload_task_timeouts_cover_the_client_retry_budget():
    budget = default_settings().call_budget_s()
    function_timeout = RESOURCES["UploaderFunction"]["Properties"]["Timeout"]
    for name in ("CreateSession", "CloseSession", "CheckStatus"):
        assert budget <= upload_states()[name]["TimeoutSeconds"] <= function_timeout, name
    for name, state in upload_states().items():
        if state["Type"] == "Task":
            assert state["TimeoutSeconds"] <= function_timeout, name
    # A create that timed out may have opened a session: never open a second one.
    retried = upload_states()["CreateSession"]["Retry"][0]["ErrorEquals"]
    assert "States.Timeout" not in retried and "States.ALL" not in retried


def test_no_presigned_url_leaves_the_uploader():
    create = upload_states()["CreateSession"]["ResultSelector"]
    # The session id, its status and the object's Content-Type; never the presigned URL.
    assert set(create) == {"id.$", "status.$", "content_type.$"}
    logging = RESOURCES["UploadStateMachine"]["Properties"]["Logging"]
    assert logging["IncludeExecutionData"] is False


def dead_letter_queues() -> set[str]:
    found = set()
    for resource in RESOURCES.values():
        properties = resource.get("Properties", {})
        target = (properties.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        target = target or (properties.get("DeadLetterQueue") or {}).get("TargetArn")
        if target:
            found.add(target["Fn::GetAtt"][0])
    return found


def alarmed(namespace: str, metric: str) -> set[str]:
    """The resources (by logical id) that an alarm watches for `metric`."""
    found = set()
    for resource in RESOURCES.values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        stats = [properties] + [
            m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m
        ]
        for stat in stats:
            if stat.get("Namespace") == namespace and stat.get("MetricName") == metric:
                for dimension in stat["Dimensions"]:
                    value = dimension["Value"]
                    if isinstance(value, dict):
                        found.add(value.get("Ref") or value.get("Fn::GetAtt", [None])[0])
                    else:
                        found.add(None)  # a literal dimension, such as service
    return found


def test_every_dlq_and_every_unfinished_execution_raises_an_alarm():
    dlqs = dead_letter_queues()
    assert dlqs == {"EventsDeadLetterQueue", "IngestDeadLetterQueue"}
    assert dlqs <= alarmed("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    machines = {n for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::StateMachine"}
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        assert machines <= alarmed("AWS/States", metric), metric
    assert alarmed("ImgixAutoadder", "ApiKeyRejected") == {None}  # service dimension only
    assert alarmed("ImgixAutoadder", "ImgixUnavailable") == {None}


def test_a_timed_out_upload_is_recorded_by_a_rule():
    rule = RESOURCES["UploaderFunction"]["Properties"]["Events"]["UnfinishedExecutions"]
    pattern = rule["Properties"]["Pattern"]
    assert pattern["detail"]["status"] == ["TIMED_OUT", "ABORTED"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "UploadStateMachine"}]
    assert rule["Properties"]["DeadLetterConfig"]["Destination"] == {
        "Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]
    }


def test_every_function_that_reads_the_key_can_decrypt_a_customer_managed_key():
    readers = {n for n, s in statements() if s.get("Sid") == "ReadImgixApiKey"}
    decrypters = {n for n, s in statements() if s.get("Sid") == "DecryptImgixApiKey"}
    assert (
        readers
        == decrypters
        == {
            "IndexerFunction",
            "UploadRouterFunction",
            "UploaderFunction",
            "BackfillFunction",
            "SourceManagerFunction",
            "AuditorFunction",
        }
    )


def test_the_users_buckets_outlive_the_stack_and_a_replacement():
    for bucket in ("OriginBucket", "IngestBucket"):
        assert RESOURCES[bucket]["DeletionPolicy"] == "Retain", bucket
        assert RESOURCES[bucket]["UpdateReplacePolicy"] == "Retain", bucket


def test_a_new_reader_key_serial_replaces_the_key_and_updates_the_source():
    """Serial replaces the access key; the secret holds the new pair (same ARN); the custom
    resource names the key, so CloudFormation sends it an Update (after both) and deletes
    the old key only once that Update is answered."""
    key = RESOURCES["ImgixReaderKey"]["Properties"]
    assert key["Serial"] == {"Ref": "ImgixReaderKeySerial"}
    secret = RESOURCES["ImgixReaderSecret"]["Properties"]["SecretString"]["Fn::Sub"]
    assert "${ImgixReaderKey}" in secret and "${ImgixReaderKey.SecretAccessKey}" in secret
    source = RESOURCES["ManagedSource"]["Properties"]
    assert source["ReaderKeyId"] == {"Ref": "ImgixReaderKey"}
    assert source["CredentialsSecretArn"] == {"Ref": "ImgixReaderSecret"}
    assert TEMPLATE["Parameters"]["ImgixReaderKeySerial"]["Default"] == 1


def test_the_upload_steps_wait_for_imgix_for_hours_within_the_session_life():
    """Each step that calls imgix retries ImgixUnavailableError (what the uploader raises
    while the breaker is open) far longer than a transient error, bounded by 8 hours."""
    machine = json.loads((ROOT / "statemachine" / "upload_session.asl.json").read_text())
    assert machine["TimeoutSeconds"] == SESSION_LIFETIME_S
    assert ImgixUnavailableError.__name__ == "ImgixUnavailableError"  # the name SFN matches
    for step in ("CreateSession", "CloseSession", "CheckStatus"):
        [waiting] = [
            r
            for r in machine["States"][step]["Retry"]
            if "ImgixUnavailableError" in r["ErrorEquals"]
        ]
        total, interval = 0.0, waiting["IntervalSeconds"]
        for _ in range(waiting["MaxAttempts"]):
            total += min(interval, waiting["MaxDelaySeconds"])
            interval *= waiting["BackoffRate"]
        assert total >= SESSION_LIFETIME_S  # outlasts the execution: the timeout ends it
        assert waiting["MaxDelaySeconds"] <= 900
