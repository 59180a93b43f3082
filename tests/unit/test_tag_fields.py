"""S3 object tags as imgix custom fields (TAG_FIELDS): the tag events AWS documents, the
fields they map to, and the settings check. No I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgix_autoadder.core.config import ConfigError, load_settings
from imgix_autoadder.indexing.fields import wanted_of
from imgix_autoadder.s3.events import parse_message_body
from imgix_autoadder.s3.origin import Current

EVENTS = Path(__file__).resolve().parents[2] / "events"
BASE = {"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24}


@pytest.mark.parametrize(
    "sample",
    [
        "s3-object-tagging-put.json",
        "s3-object-tagging-delete.json",
        "eventbridge-object-tags-added.json",
        "eventbridge-object-tags-deleted.json",
    ],
)
def test_a_tag_event_is_a_tag_change_of_the_object_with_no_order(sample: str):
    changes = parse_message_body((EVENTS / sample).read_text())
    # An EventBridge key with '+' has two readings (s3/events.py); each is a tag change.
    assert {c.key for c in changes} <= {
        "images/summer sale/hero.jpg",
        "images/summer+sale/hero.jpg",
    }
    for change in changes:
        assert change.tags_only and not change.removed
        # AWS: the sequencer is "only used with PUTs and DELETEs"; a tag event has none.
        assert change.sequencer == "" and change.version_id and change.etag


def test_object_events_are_not_tag_changes():
    [change] = parse_message_body((EVENTS / "s3-put.json").read_text())
    assert not change.tags_only and change.sequencer


def test_an_acl_or_restore_event_is_still_nothing_to_index():
    document = json.loads((EVENTS / "s3-object-tagging-put.json").read_text())
    for name in ("ObjectAcl:Put", "ObjectRestore:Completed"):
        document["Records"][0]["eventName"] = name
        assert parse_message_body(json.dumps(document)) == []


def test_metadata_and_tags_map_to_prefixed_fields_tags_matched_without_case():
    now = Current(
        True,
        user_metadata=(("sku", "A1"), ("internal", "x")),
        tags=(("Season", "summer"), ("cost-centre", "7"), ("team", "red")),
    )
    assert wanted_of(now, ("sku",), ("season", "team"), "s3_") == {
        "s3_sku": "A1",
        "s3_season": "summer",
        "s3_team": "red",
    }
    assert wanted_of(Current(True), ("sku",), ("season",), "") == {}


def test_tag_keys_are_read_lower_cased_and_checked_with_the_metadata_keys():
    read = load_settings({**BASE, "TAG_FIELDS": "Season, team", "METADATA_FIELDS": "sku"})
    assert read.tag_fields == ("season", "team") and read.metadata_fields == ("sku",)
    assert load_settings(BASE).tag_fields == ()


@pytest.mark.parametrize(
    ("tags", "metadata", "problem"),
    [
        ("sku", "sku", "twice"),  # one field from two places
        ("Season,season", "", "twice"),
        ("sea son", "", "TAG_FIELDS entry 'sea son'"),
        (",".join(f"t{i}" for i in range(15)), ",".join(f"m{i}" for i in range(6)), "at most 20"),
    ],
)
def test_a_tag_mapping_imgix_cannot_hold_is_refused_at_cold_start(
    tags: str, metadata: str, problem: str
):
    with pytest.raises(ConfigError, match=problem):
        load_settings({**BASE, "TAG_FIELDS": tags, "METADATA_FIELDS": metadata})
