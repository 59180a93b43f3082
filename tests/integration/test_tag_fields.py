"""S3 object tags in the Asset Manager (TAG_FIELDS): a tag change is an event of its own
(notification or EventBridge), costs a read and a PATCH of the asset and never a refresh,
is written once, and two changes handled at once never leave the older one in imgix. The
function reads tags with exactly the permissions the template grants when TagFields is set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.exceptions import ClientError

from imgix_autoadder import wiring
from imgix_autoadder.s3 import origin
from tests.harness.template_iam import function_identities
from tests.harness.world import BUCKET, FakeContext, Stack, load_function, template_parameters
from tests.integration.test_event_shapes import created, deliver, put

EVENTS = Path(__file__).resolve().parents[2] / "events"
KEY = "images/catalogue/shoe 1+1.jpg"
PATH = KEY.removeprefix("images/")
MAPPING = {"METADATA_FIELDS": "sku", "TAG_FIELDS": "Season,team", "CUSTOM_FIELD_PREFIX": "s3_"}


def granted(stack: Stack, monkeypatch: pytest.MonkeyPatch, **parameters: str) -> None:
    """The functions' identities for a stack deployed with these parameters."""
    deployment = "-" + "-".join(sorted(parameters))
    identities = function_identities(
        template_parameters(stack.local, stack.source_id, **parameters), deployment
    )
    monkeypatch.setattr(wiring, "aws_session", lambda function: identities[function])


@pytest.fixture
def invoke(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    granted(stack, monkeypatch, MetadataFields="sku", TagFields="Season,team")
    for name, value in MAPPING.items():
        monkeypatch.setenv(name, value)
    indexer = load_function("indexer")
    return lambda event: indexer.lambda_handler(event, FakeContext())


def tag_event(stack: Stack, key: str, sample: str = "s3-object-tagging-put.json") -> dict:
    """S3's event for a tag change of the key's current object, shaped as AWS documents it
    (no sequencer: AWS gives one to PUTs and DELETEs only)."""
    head = stack.s3.head_object(Bucket=BUCKET, Key=key)
    document = json.loads((EVENTS / sample).read_text())
    if "Records" in document:
        obj = document["Records"][0]["s3"]["object"]
        obj.update(key=quote_plus(key, safe="/"), versionId=head["VersionId"])
        obj["eTag"] = head["ETag"].strip('"')
    else:
        obj = document["detail"]["object"]
        obj.update(key=key, etag=head["ETag"].strip('"'))
        obj["version-id"] = head["VersionId"]
    return document


def set_tags(stack: Stack, key: str, **tags: str) -> None:
    if not tags:  # an empty TagSet removes every tag; moto cannot parse one, so: the same
        stack.s3.delete_object_tagging(Bucket=BUCKET, Key=key)
        return
    tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
    stack.s3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": tag_set})


def fields(stack: Stack, path: str = PATH) -> dict[str, Any]:
    return dict(stack.emulator.assets[(stack.source_id, path)].editable.get("custom_fields", {}))


def routes(stack: Stack) -> list[str]:
    return [c.route for c in stack.emulator.calls if c.route != "get_source"]


def test_a_tag_change_is_a_patch_never_a_refresh_and_is_written_once(stack: Stack, invoke: Any):
    v1 = put(stack, KEY, b"shoe", ContentType="image/jpeg", Metadata={"sku": "A1"},
             Tagging="Season=summer&cost=7")  # fmt: skip
    deliver(invoke, created(stack, KEY, v1))
    assert routes(stack) == ["add_asset", "get_asset", "patch_asset"]
    assert fields(stack) == {"s3_sku": "A1", "s3_season": "summer"}

    stack.emulator.assets[(stack.source_id, PATH)].editable["custom_fields"]["owner"] = "ann"
    set_tags(stack, KEY, Season="winter", team="red")
    stack.emulator.reset_calls()
    changed = tag_event(stack, KEY)
    deliver(invoke, changed)
    assert routes(stack) == ["get_asset", "patch_asset"]  # no refresh: the bytes are the same
    assert fields(stack) == {
        "owner": "ann",
        "s3_sku": "A1",
        "s3_season": "winter",
        "s3_team": "red",
    }

    stack.emulator.reset_calls()
    deliver(invoke, changed)  # delivered again: imgix holds these fields
    assert routes(stack) == []

    stack.s3.delete_object_tagging(Bucket=BUCKET, Key=KEY)
    deliver(invoke, tag_event(stack, KEY, "s3-object-tagging-delete.json"))
    assert routes(stack) == ["get_asset", "patch_asset"]
    assert fields(stack) == {"owner": "ann", "s3_sku": "A1"}  # the mapped tags gone, and only they
    assert stack.dlq_messages() == []


@pytest.mark.parametrize(
    "sample", ["eventbridge-object-tags-added.json", "eventbridge-object-tags-deleted.json"]
)
def test_eventbridge_tag_events_rewrite_the_fields(stack: Stack, invoke: Any, sample: str):
    key = "images/catalogue/boot.jpg"
    deliver(invoke, created(stack, key, put(stack, key, b"boot", Tagging="team=blue")))
    assert fields(stack, "catalogue/boot.jpg") == {"s3_team": "blue"}
    if sample.endswith("added.json"):
        set_tags(stack, key, team="green")
    else:
        stack.s3.delete_object_tagging(Bucket=BUCKET, Key=key)
    stack.emulator.reset_calls()

    deliver(invoke, tag_event(stack, key, sample))

    assert routes(stack) == ["get_asset", "patch_asset"]
    want = {"s3_team": "green"} if sample.endswith("added.json") else {}
    assert fields(stack, "catalogue/boot.jpg") == want


def test_a_tag_change_made_while_its_fields_are_written_is_written_too(
    stack: Stack, invoke: Any, monkeypatch: pytest.MonkeyPatch
):
    """Two changes of one key handled at once (two environments): the one that read S3
    first must not leave its older tags in imgix. Here S3 moves on between the indexer's
    reading and its PATCH; the writer reads S3 again after the PATCH and writes again."""
    deliver(invoke, created(stack, KEY, put(stack, KEY, b"shoe", Tagging="team=red")))
    set_tags(stack, KEY, team="blue")
    event = tag_event(stack, KEY)
    real_current = origin.S3Origin.current
    readings = []

    def current(self: origin.S3Origin, bucket: str, key: str) -> origin.Current:
        readings.append(key)
        if len(readings) == 2:  # the reading after the PATCH: another change came meanwhile
            set_tags(stack, KEY, team="green")
        return real_current(self, bucket, key)

    monkeypatch.setattr(origin.S3Origin, "current", current)
    stack.emulator.reset_calls()

    deliver(invoke, event)

    assert fields(stack) == {"s3_team": "green"}
    assert routes(stack) == ["get_asset", "patch_asset", "get_asset", "patch_asset"]
    stack.emulator.reset_calls()
    deliver(invoke, tag_event(stack, KEY))  # the newer change's own event: nothing left to do
    assert routes(stack) == []


def test_without_tag_fields_a_tag_event_costs_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("METADATA_FIELDS", "sku")
    indexer = load_function("indexer")
    obj = put(stack, KEY, b"shoe", Metadata={"sku": "A1"}, Tagging="team=red")
    deliver(lambda e: indexer.lambda_handler(e, FakeContext()), created(stack, KEY, obj))
    stack.emulator.reset_calls()

    result = deliver(lambda e: indexer.lambda_handler(e, FakeContext()), tag_event(stack, KEY))

    assert result == {"batchItemFailures": []} and routes(stack) == []
    assert fields(stack) == {"sku": "A1"}  # the tag was never read, nor written


def test_reading_tags_needs_the_permission_the_template_grants_only_with_tag_fields(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
):
    for name, value in MAPPING.items():
        monkeypatch.setenv(name, value)
    put(stack, KEY, b"shoe", Tagging="team=red")
    without = function_identities(template_parameters(stack.local, stack.source_id), "-none")
    s3 = without["IndexerFunction"].client("s3")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.get_object_tagging(Bucket=BUCKET, Key=KEY)
    with_tags = function_identities(
        template_parameters(stack.local, stack.source_id, TagFields="team"), "-tags"
    )
    tags = with_tags["IndexerFunction"].client("s3").get_object_tagging(Bucket=BUCKET, Key=KEY)
    assert tags["TagSet"] == [{"Key": "team", "Value": "red"}]
    backfill = with_tags["BackfillFunction"].client("s3")
    assert backfill.get_object_tagging(Bucket=BUCKET, Key=KEY)["TagSet"]


def test_a_look_for_existence_reads_no_tags(stack: Stack):
    """With tags mapped, a reading costs a GetObjectTagging more; the checks that only ask
    whether the key holds an object (the other reading of an EventBridge key, a 404's
    cause, the audit's backward slice) must not pay it."""
    s3 = boto3.client("s3")
    called: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: called.append(model.name))
    reader = origin.S3Origin(s3, read_tags=True)
    put(stack, KEY, b"shoe", Tagging="team=red")

    assert reader.exists(BUCKET, KEY) and not reader.exists(BUCKET, KEY + ".gone")
    assert called == ["HeadObject", "HeadObject"]
    called.clear()
    assert reader.current(BUCKET, KEY).tags == (("team", "red"),)
    assert called == ["HeadObject", "GetObjectTagging"]
