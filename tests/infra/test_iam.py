"""IAM proven from template.yaml: every permission a function holds is needed, and every
call it makes is allowed. Handlers run as moto IAM users holding exactly the policies the
SAM translator gives their role (tests/harness/template_iam.py)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from imgix_autoadder import wiring
from imgix_autoadder.core.api_key import ApiKeyError
from imgix_autoadder.core.config import load_settings
from localdev.provision import EVENTS_DLQ, EVENTS_QUEUE
from tests.harness.events import notification, queued, s3_record, sqs_event
from tests.harness.template_iam import FUNCTIONS, identity_session, role_policies, test_resources
from tests.harness.world import API_KEY, FakeContext, Stack, load_function, template_parameters

INDEXER_SIDS = [
    "ReadImgixApiKey",
    "SharedRateBudget",
    "KeyState",
    "CurrentOriginEtag",
    "MissingObjectIs404",
    "KeyHistory",
    "RedeliverDeferredRecords",
    "IdempotencyRecords",
    "DeadLetterPoisonRecords",
]


def without(documents: list[dict[str, Any]], sid: str) -> list[dict[str, Any]]:
    out = []
    for document in documents:
        kept = [s for s in document["Statement"] if s.get("Sid") != sid]
        out.append({**document, "Statement": kept})
    return out


def run_scenario(stack: Stack, monkeypatch: pytest.MonkeyPatch, identity: Any) -> tuple:
    """One batch that needs every permission the indexer has: an add, a put whose object
    is already gone (a HEAD that must say 404), a poison record, and a deferral."""
    monkeypatch.setattr(wiring, "aws_session", lambda function: identity)
    monkeypatch.setenv("IMGIX_DEFAULT_PER_SECOND", "100")  # paced: the shared budget is used
    indexer = load_function("indexer")
    stack.emulator.reset_calls()
    gone_etag = stack.put("images/iam-gone.jpg")
    stack.s3.delete_object(Bucket=stack.local.bucket, Key="images/iam-gone.jpg")
    stack.emulator.answers["busy"] = (429, {"Retry-After": "600"}, b"{}")
    stack.emulator.faults.script(["answer:busy"], route="add_asset", origin_path="iam-later.jpg")
    event = sqs_event(
        notification(
            s3_record("ObjectCreated:Put", "images/iam-a.jpg", stack.put("images/iam-a.jpg"))
        ),
        notification(s3_record("ObjectCreated:Put", "images/iam-gone.jpg", gone_etag)),
        "not json",
        notification(
            s3_record(
                "ObjectCreated:Put", "images/iam-later.jpg", stack.put("images/iam-later.jpg")
            )
        ),
    )
    before = (len(queued(EVENTS_DLQ)), len(queued(EVENTS_QUEUE)))
    response = indexer.lambda_handler(event, FakeContext())
    order = {r["messageId"]: i for i, r in enumerate(event["Records"])}
    failed = sorted(order[f["itemIdentifier"]] for f in response["batchItemFailures"])
    calls = sorted((c.route, c.origin_path, c.status) for c in stack.emulator.calls)
    return failed, calls, len(queued(EVENTS_DLQ)) - before[0], len(queued(EVENTS_QUEUE)) - before[1]


def test_the_indexer_needs_every_permission_it_has_and_no_other(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    failed, calls, dead, deferred = run_scenario(
        stack, monkeypatch, stack.identities["IndexerFunction"]
    )
    # With the template's policy: all four records reach their outcome.
    assert failed == [] and dead == 1 and deferred == 1
    assert ("add_asset", "iam-a.jpg", 200) in calls

    parameters = template_parameters(stack.local, stack.source_id)
    documents = role_policies("IndexerFunction", parameters, test_resources())
    sids = {s.get("Sid") for d in documents for s in d["Statement"] if s.get("Sid")}
    assert sids == set(INDEXER_SIDS)  # a new statement needs a row here, and a reason
    for sid in INDEXER_SIDS:
        # Fresh state, so that the scenario starts from the same place each time.
        boto3.client("dynamodb").delete_item(
            TableName=stack.local.state_table,
            Key={"bucket": {"S": stack.local.bucket}, "key": {"S": "images/iam-a.jpg"}},
        )
        identity = identity_session(f"indexer-without-{sid}", without(documents, sid))
        outcome = run_scenario(stack, monkeypatch, identity)
        assert outcome != (failed, calls, dead, deferred), f"{sid} is granted but not needed"


@pytest.fixture
def cmk_secret(stack: Stack) -> dict[str, str]:
    """The API key in a secret encrypted with a customer managed KMS key."""
    key_arn = boto3.client("kms").create_key(Description="imgix key")["KeyMetadata"]["Arn"]
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(
        Name="imgix-autoadder/cmk-key",
        SecretString=json.dumps({"api_key": API_KEY}),
        KmsKeyId=key_arn,
    )["ARN"]
    return {"ImgixApiKeySecretArn": arn, "ImgixApiKeySecretKmsKeyArn": key_arn}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_reads_a_key_encrypted_with_a_customer_managed_key(
    stack: Stack, cmk_secret: dict[str, str], function: str
):
    parameters = {**template_parameters(stack.local, stack.source_id), **cmk_secret}
    documents = role_policies(function, parameters, test_resources())
    settings = load_settings(
        {
            "IMGIX_API_KEY_SECRET": cmk_secret["ImgixApiKeySecretArn"],
            "IMGIX_SOURCE_IDS": stack.source_id,
        }
    )

    allowed = identity_session(f"{function}-cmk", documents)
    assert wiring.api_key_source(settings, allowed).get() == API_KEY

    denied = identity_session(f"{function}-no-kms", without(documents, "DecryptImgixApiKey"))
    with pytest.raises(ApiKeyError, match=r"AccessDenied|KMS"):
        wiring.api_key_source(settings, denied).get()


def test_a_head_of_a_missing_object_is_403_without_list_bucket(stack: Stack):
    """The AWS rule the harness adds: it is why MissingObjectIs404 exists."""
    from botocore.exceptions import ClientError

    parameters = template_parameters(stack.local, stack.source_id)
    documents = role_policies("IndexerFunction", parameters, test_resources())
    s3 = identity_session("no-list", without(documents, "MissingObjectIs404")).client("s3")
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=stack.local.bucket, Key="images/never.jpg")
    assert caught.value.response["Error"]["Code"] == "403"
    s3 = stack.identities["IndexerFunction"].client("s3")
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=stack.local.bucket, Key="images/never.jpg")
    assert caught.value.response["Error"]["Code"] == "404"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_reserves_rate_budget_slots_under_its_own_policy(
    stack: Stack, function: str
):
    """Each function's client paces through the shared budget (SharedRateBudget), as the
    template wires it; without the statement, DynamoDB refuses the reservation."""
    from botocore.exceptions import ClientError

    settings = load_settings({**stack.local.env("http://127.0.0.1:1", [stack.source_id])})
    identity = stack.identities[function]
    pacers = wiring.build_pacers(settings, identity)
    assert pacers.default.acquire() == 0.0 and pacers.purge.acquire() == 0.0

    parameters = template_parameters(stack.local, stack.source_id)
    documents = role_policies(function, parameters, test_resources())
    refused = identity_session(f"{function}-no-budget", without(documents, "SharedRateBudget"))
    with pytest.raises(ClientError, match=r"AccessDenied|not authorized"):
        wiring.build_pacers(settings, refused).default.acquire()
