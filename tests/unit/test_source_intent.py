"""The managed Source's drift and the PATCH that mends it, with no imgix and no AWS."""

from __future__ import annotations

from typing import Any

from imgix_autoadder.sources.intent import SourceIntent, patch_for

KEYS = {"s3_access_key": "AKIAREADER", "s3_secret_key": "secret"}
INTENT = SourceIntent(
    name="photos",
    bucket="origin",
    prefix="images",
    subdomains=("a", "b"),
    allows_upload=True,
    credentials_secret="arn:secret",
    retain=False,
    reader_key_id="AKIAREADER",
)


def source(**changes: Any) -> dict[str, Any]:
    deployment = {
        "type": "s3",
        "s3_bucket": "origin",
        "s3_prefix": "/images/",
        "imgix_subdomains": ["b", "a"],
        "allows_upload": True,
        "s3_access_key": "AKIAREADER",
    }
    deployment.update(changes.pop("deployment", {}))
    return {"attributes": {"name": "photos", "enabled": True, "deployment": deployment, **changes}}


def test_a_source_as_intended_has_no_drift_and_needs_no_patch():
    """Slashes around the prefix and the order of subdomains are not drift."""
    assert INTENT.drift(source()) == {}
    assert patch_for(INTENT, INTENT, source(), KEYS) == {}


def test_each_drifted_field_is_named_with_what_imgix_holds_and_what_the_stack_wants():
    drifted = source(name="old", enabled=False, deployment={"s3_bucket": "other"})
    assert INTENT.drift(drifted) == {
        "name": ("old", "photos"),
        "s3_bucket": ("other", "origin"),
        "enabled": (False, True),
    }


def test_the_patch_sends_only_what_drifted():
    patch = patch_for(INTENT, INTENT, source(deployment={"allows_upload": False}), KEYS)
    assert patch == {"deployment": {"allows_upload": True}}


def test_a_rotated_reader_key_sends_the_new_pair_even_without_drift():
    rotated = SourceIntent(**{**INTENT.__dict__, "reader_key_id": "AKIANEW"})
    new_keys = {"s3_access_key": "AKIANEW", "s3_secret_key": "new"}
    assert rotated.rotates_keys(INTENT)
    assert patch_for(rotated, INTENT, source(), new_keys) == {"deployment": new_keys}


def test_imgix_holding_another_access_key_is_given_the_stacks_pair():
    patch = patch_for(INTENT, INTENT, source(deployment={"s3_access_key": "AKIAOTHER"}), KEYS)
    assert patch == {"deployment": KEYS}


def test_a_new_credentials_secret_or_a_first_update_sends_the_pair():
    moved = SourceIntent(**{**INTENT.__dict__, "credentials_secret": "arn:other"})
    assert moved.rotates_keys(INTENT)
    assert INTENT.rotates_keys(None)
    assert not INTENT.rotates_keys(INTENT)


def test_a_disabled_source_is_enabled_again():
    assert patch_for(INTENT, INTENT, source(enabled=False), KEYS) == {"enabled": True}
