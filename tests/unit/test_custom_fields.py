"""S3 user metadata as imgix custom fields (indexing/fields.py, core/config.py): no I/O."""

from __future__ import annotations

import pytest

from imgix_autoadder.core.config import ConfigError, load_settings
from imgix_autoadder.indexing.fields import digest, merged, wanted_fields

KEYS = ("sku", "color")


def test_the_mapped_keys_become_prefixed_fields_and_others_are_left_out():
    metadata = {"sku": "A1", "Color": "red", "internal": "x"}  # S3 keeps keys lower-case
    assert wanted_fields(metadata, KEYS, "s3_") == {"s3_sku": "A1", "s3_color": "red"}
    assert wanted_fields({}, KEYS, "s3_") == {}


def test_fields_people_set_survive_and_owned_ones_follow_s3():
    current = {"owner": "ann", "s3_sku": "A1", "s3_color": "red"}
    owned = {"s3_sku", "s3_color"}
    assert merged(current, owned, {"s3_sku": "B2"}) == {"owner": "ann", "s3_sku": "B2"}
    assert merged({}, owned, {"s3_sku": "B2"}) == {"s3_sku": "B2"}


def test_the_digest_says_whether_imgix_holds_these_fields():
    assert digest({"a": "1", "b": "2"}) == digest({"b": "2", "a": "1"})
    assert digest({"a": "1"}) != digest({"a": "2"}) != digest({})


BASE = {"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24}


@pytest.mark.parametrize(
    ("fields", "prefix", "problem"),
    [
        ("sku,Color", "", "'Color'"),  # S3 keeps user-metadata keys lower-case
        ("sku,sku", "", "twice"),
        (",".join(f"k{i}" for i in range(21)), "", "at most 20"),
        ("sku", "S3 ", "no custom field name"),
        ("x" * 64, "p_", "no custom field name"),  # 66 long with the prefix
    ],
)
def test_a_mapping_imgix_cannot_hold_is_refused_at_cold_start(
    fields: str, prefix: str, problem: str
):
    env = {**BASE, "METADATA_FIELDS": fields, "CUSTOM_FIELD_PREFIX": prefix}
    with pytest.raises(ConfigError, match=problem):
        load_settings(env)


def test_the_mapping_is_off_by_default_and_read_when_set():
    assert load_settings(BASE).metadata_fields == ()
    read = load_settings({**BASE, "METADATA_FIELDS": "sku, color", "CUSTOM_FIELD_PREFIX": "s3_"})
    assert read.metadata_fields == KEYS and read.custom_field_prefix == "s3_"
