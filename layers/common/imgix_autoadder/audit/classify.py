"""Every key of a Source's prefix, classified by what S3 holds and what imgix lists (pure).

- in sync: both hold it, and nothing imgix lists contradicts S3;
- missing: S3 holds it, imgix does not list it;
- stale: imgix's file_size or content_type differ from S3's size or Content-Type, or S3's
  LastModified is later than imgix's date_modified (imgix has not seen the change);
- deleted at origin: imgix lists it, S3 does not hold it (imgix has no delete: a purged
  asset stays listed), with whether the state table recorded its purge;
- skipped: what the indexer leaves out by design (folder markers); `s3:TestEvent` and
  keys outside the prefix never reach a Source's listing at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from imgix_autoadder.indexing.coalesce import targets_of
from imgix_autoadder.s3.events import ObjectChange
from imgix_autoadder.sources.source_map import Source, SourceMap

# S3's LastModified and imgix's date_modified are whole seconds from two clocks.
CLOCK_TOLERANCE_S = 2.0


class Verdict(StrEnum):
    IN_SYNC = "in sync"
    MISSING = "missing"
    STALE = "stale"
    DELETED_AT_ORIGIN = "deleted at origin"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class OriginObject:
    """One ListObjectsV2 entry (and, when asked, its HeadObject Content-Type)."""

    key: str
    size: int
    last_modified: float  # epoch seconds
    etag: str = ""
    content_type: str | None = None


@dataclass(frozen=True)
class ListedAsset:
    """One entry of imgix's asset list: the attributes the audit compares."""

    origin_path: str  # without the leading '/'
    file_size: int | None
    content_type: str | None
    date_modified: float | None  # epoch seconds; date_created when never modified

    @classmethod
    def from_api(cls, resource: dict[str, Any]) -> ListedAsset:
        attributes = resource.get("attributes") or {}
        modified = attributes.get("date_modified") or attributes.get("date_created")
        size = attributes.get("file_size")
        return cls(
            origin_path=str(attributes.get("origin_path") or "").removeprefix("/"),
            file_size=int(size) if size is not None else None,
            content_type=attributes.get("content_type"),
            date_modified=float(modified) if modified is not None else None,
        )


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    key: str
    origin_path: str
    reason: str = ""


@dataclass
class AuditReport:
    source_id: str
    findings: list[Finding] = field(default_factory=list)

    def counts(self) -> Counter[Verdict]:
        return Counter(finding.verdict for finding in self.findings)

    @property
    def needs_fixing(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict in (Verdict.MISSING, Verdict.STALE)]


def contradiction(obj: OriginObject, asset: ListedAsset) -> str:
    """Why imgix's listing contradicts S3's object, or '' when it does not."""
    if asset.file_size is not None and asset.file_size != obj.size:
        return f"imgix holds {asset.file_size} bytes, S3 {obj.size}"
    if obj.content_type and asset.content_type and asset.content_type != obj.content_type:
        return f"imgix holds {asset.content_type}, S3 {obj.content_type}"
    if (
        asset.date_modified is not None
        and obj.last_modified > asset.date_modified + CLOCK_TOLERANCE_S
    ):
        late_s = obj.last_modified - asset.date_modified
        return f"S3 changed it {late_s:.0f} s after imgix last processed it"
    return ""


def skip_reason(source: Source, key: str) -> str:
    """The indexer's own rule (indexing.coalesce.targets_of): '' when it indexes the key."""
    listed = ObjectChange(source.bucket, key, False, "", "", None, "", "Audit", "")
    targets, reason = targets_of(SourceMap([source]), listed)
    return "" if targets else reason


def classify(
    source: Source,
    objects: Iterable[OriginObject],
    assets: Iterable[ListedAsset],
    purged: Callable[[str], bool | None] = lambda key: None,
) -> AuditReport:
    """`purged(key)`: whether the state table recorded the key's purge (None: not read)."""
    report = AuditReport(source.id)
    listed = {asset.origin_path: asset for asset in assets}
    held: set[str] = set()
    for obj in objects:
        path = source.origin_path(source.bucket, obj.key) or obj.key
        reason = skip_reason(source, obj.key)
        if reason:
            report.findings.append(Finding(Verdict.SKIPPED, obj.key, path, reason))
            continue
        held.add(path)
        asset = listed.get(path)
        if asset is None:
            report.findings.append(Finding(Verdict.MISSING, obj.key, path, "imgix lists none"))
            continue
        why = contradiction(obj, asset)
        report.findings.append(
            Finding(Verdict.STALE if why else Verdict.IN_SYNC, obj.key, path, why)
        )
    for path in sorted(set(listed) - held):
        key = source.object_key(path)
        recorded = purged(key)
        note = {True: "purge recorded", False: "no purge recorded", None: ""}[recorded]
        report.findings.append(Finding(Verdict.DELETED_AT_ORIGIN, key, path, note))
    return report
