"""A batch's messages parsed and coalesced per (bucket, key): several events for one key
cost one decision, made for the newest (by S3's sequencer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from imgix_autoadder.indexing.results import BatchReport, Message, Result, Status
from imgix_autoadder.ingest.ledger import Receipt, written_by_upload
from imgix_autoadder.s3.events import (
    ObjectChange,
    PoisonRecord,
    SubscriptionHandshake,
    parse_message_body,
)
from imgix_autoadder.s3.origin import Current
from imgix_autoadder.sources.source_map import SourceMap, Target


class Log(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class KeyWork:
    bucket: str
    key: str
    targets: list[Target]
    changes: list[tuple[ObjectChange, str]] = field(default_factory=list)
    # What the product's ingest handed imgix for a target, by (source id, origin path).
    receipts: dict[tuple[str, str], Receipt] = field(default_factory=dict)
    # `ops audit --fix`: imgix does not hold what it was told (missing, or stale): tell it
    # again, whatever the state table says.
    retell: bool = False

    def uploaded_targets(self, now: Current) -> list[Target]:
        """The Sources that imgix wrote this very object for (the product's ingest): it
        indexed it as it wrote it, so telling it again would waste a call."""
        return [
            t
            for t in self.targets
            if written_by_upload(self.receipts.get((t.source.id, t.origin_path)), now)
        ]

    @property
    def events(self) -> list[ObjectChange]:
        return [change for change, _ in self.changes]

    @property
    def ambiguous(self) -> bool:
        """Only EventBridge readings of this key, which may not be the real one."""
        return all(change.ambiguous_key for change in self.events)

    @property
    def latest(self) -> ObjectChange:
        # Ties (no sequencer, same eventTime) go to the later arrival.
        arrivals = enumerate(self.events)
        return max(arrivals, key=lambda pair: (pair[1].order(), pair[0]))[1]


def targets_of(sources: SourceMap, change: ObjectChange) -> tuple[list[Target], str]:
    """The Sources to tell about this change, or none and the reason why."""
    if change.is_folder_marker:
        return [], "folder marker"
    targets = sources.targets(change.bucket, change.key)
    return targets, "" if targets else "outside every Source prefix"


def collect(
    message: Message,
    sources: SourceMap,
    work: dict[tuple[str, str], KeyWork],
    report: BatchReport,
    log: Log,
) -> None:
    """Parse one message into the batch's per-key work, or give it its outcome at once."""
    changes = parse_or_poison(message, report, log)
    if changes is None:
        return
    report.merge(message.message_id, Result(Status.SKIPPED, "no object change to index"))
    for change in changes:
        targets, skip_reason = targets_of(sources, change)
        if not targets:
            log.info(f"skipped: {skip_reason}", extra={"bucket": change.bucket, "key": change.key})
            report.counts["skipped"] += 1
            continue
        entry = work.setdefault(
            (change.bucket, change.key), KeyWork(change.bucket, change.key, targets)
        )
        entry.changes.append((change, message.message_id))


def parse_or_poison(message: Message, report: BatchReport, log: Log) -> list[ObjectChange] | None:
    """The message's object changes; None when it is poison (its outcome is then in
    `report`, whatever imgix can answer: a poison record is never held back)."""
    try:
        return parse_message_body(message.body)
    except SubscriptionHandshake as exc:
        # One line, the topic and what to do; the message itself (its token) goes to
        # the DLQ. The URL is never logged nor fetched.
        log.warning(
            "SNS subscription needs a person",
            extra={"message_id": message.message_id, "topic": exc.topic_arn, "type": exc.kind},
        )
        report.merge(message.message_id, Result(Status.POISON, str(exc)))
        report.counts["sns_handshake"] += 1
        report.counts["poison"] += 1
        return None
    except PoisonRecord as exc:
        log.warning("poison record", extra={"message_id": message.message_id, "reason": str(exc)})
        report.merge(message.message_id, Result(Status.POISON, str(exc)))
        report.counts["poison"] += 1
        return None
