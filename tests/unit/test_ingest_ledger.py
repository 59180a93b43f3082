"""The ingest ledger's two decisions, as pure functions: no moto, no HTTP."""

from __future__ import annotations

import pytest

from imgix_autoadder.ingest.ledger import CLOCK_SKEW_MS, Receipt, is_superseded, written_by_upload
from imgix_autoadder.s3.events import sortable_sequencer
from imgix_autoadder.s3.origin import Current

MD5 = "0cc175b9c0f1b6a831c399e269772661"
STARTED = 1_800_000_000_000


@pytest.mark.parametrize(
    ("claimed", "sequencer", "superseded"),
    [
        ("", "0055AED6DCD90281E5", False),  # nothing claimed yet
        (sortable_sequencer("0055AED6DCD90281E5"), "0055AED6DCD90281E5", False),  # a retry
        (sortable_sequencer("0055AED6DCD90281E6"), "0055AED6DCD90281E5", True),  # newer claimed
        (sortable_sequencer("0055AED6DCD90281E5"), "0055AED6DCD90281E6", False),  # this is newer
        (sortable_sequencer("FF"), "0100", False),  # compared as numbers, not as text
        (sortable_sequencer("0055AED6DCD90281E6"), "", False),  # no sequencer: S3 decides
    ],
)
def test_an_ingest_event_is_superseded_only_by_a_newer_claim(
    claimed: str, sequencer: str, superseded: bool
):
    assert is_superseded(claimed, sequencer) is superseded


def current(**kw: object) -> Current:
    fields = {"exists": True, "etag": MD5, "size": 1000, "last_modified_ms": STARTED + 2000}
    return Current(**{**fields, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("receipt", "now", "written"),
    [
        (Receipt(1000, MD5, STARTED), current(), True),  # direct upload: same MD5
        (None, current(), False),  # no upload: an ordinary object
        (Receipt(1000, MD5, STARTED), current(exists=False), False),
        (Receipt(999, MD5, STARTED), current(), False),  # another size
        # Another MD5 on a plain ETag: someone else's bytes, whenever written.
        (Receipt(1000, MD5, STARTED), current(etag="f" * 32), False),
        # SSE-KMS: the ETag is no MD5; written after the upload began.
        (Receipt(1000, MD5, STARTED), current(etag="f" * 32, kms_encrypted=True), True),
        # Upload session: multipart ETag, no MD5 known; by time and size.
        (Receipt(1000, "", STARTED), current(etag="a" * 32 + "-3"), True),
        (
            Receipt(1000, "", STARTED),
            current(etag="a" * 32 + "-3", last_modified_ms=STARTED - CLOCK_SKEW_MS - 1),
            False,  # written before the upload began: not imgix's write
        ),
    ],
)
def test_the_object_imgix_wrote_for_an_upload_is_recognised(
    receipt: Receipt | None, now: Current, written: bool
):
    assert written_by_upload(receipt, now) is written
