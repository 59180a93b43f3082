"""What the product knows of one key: what S3 held when last looked at, and, apart from
it, what imgix was last told (indexed with an ETag and metadata, or purged)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from imgix_autoadder.s3.events import ObjectChange, sortable_sequencer


class Told(StrEnum):
    """What imgix was last told about a key: the other half of the state."""

    NOTHING = ""
    INDEXED = "indexed"  # add or refresh, of told_etag / told_fingerprint
    PURGED = "purged"  # every URL purged, for the absence told_version (or told_sequencer)


@dataclass(frozen=True)
class KeyState:
    """One key, two sides: what S3 held when last looked at, and what imgix was last told.

    Decisions compare S3's current object (asked of S3 itself) with the told side; the S3
    side is kept for the record and for the operator (`s3_*`)."""

    sequencer: str  # sortable form of the newest event handled
    told: Told = Told.NOTHING
    told_etag: str = ""
    told_fingerprint: str = ""
    told_version: str = ""  # for PURGED: the delete marker's version id, if there was one
    told_sequencer: str = ""
    # The custom fields imgix was last given (indexing/fields.py: their digest, or a wait).
    told_fields: str = ""
    s3_present: bool = False
    s3_etag: str = ""
    s3_version: str = ""

    @property
    def etag(self) -> str:
        return self.told_etag

    def is_newer_or_same(self, change: ObjectChange) -> bool:
        """True when this state already reflects `change` or something after it."""
        if not self.sequencer or not change.sequencer:
            return False  # cannot order without sequencers; S3 itself decides
        return sortable_sequencer(change.sequencer) <= self.sequencer

    def holds(self, etag: str, fingerprint: str) -> bool:
        """imgix was last given exactly these bytes and this metadata."""
        same_meta = not self.told_fingerprint or self.told_fingerprint == fingerprint
        return self.told is Told.INDEXED and self.told_etag == etag and same_meta

    def purged_since(self, version: str, change: ObjectChange) -> bool:
        """The present absence was purged already: same delete marker, or no event since."""
        if self.told is not Told.PURGED:
            return False
        if version and self.told_version:
            return version == self.told_version
        if not change.sequencer or not self.told_sequencer:
            return True
        return sortable_sequencer(change.sequencer) <= self.told_sequencer
