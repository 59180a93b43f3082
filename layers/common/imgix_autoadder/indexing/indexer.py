"""Decide, per S3 key, what imgix must be told, and tell it: add, refresh, purge or nothing.

The batch is parsed first and coalesced per (bucket, key), so that several events for
one key in a batch cost one API call, made for the newest event (by S3's sequencer).
Each message then gets one outcome: done, skipped, poison (DLQ with reason) or retry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError, ImgixNotFound
from imgix_autoadder.indexing.calls import tell
from imgix_autoadder.indexing.coalesce import KeyWork, Log, collect, targets_of
from imgix_autoadder.indexing.decide import Lookups, decide, is_stale
from imgix_autoadder.indexing.fields import WAIT_S, FieldWriter, waits_so_far
from imgix_autoadder.indexing.key_state import KeyState
from imgix_autoadder.indexing.results import (
    IN_PROGRESS_DELAY_S,
    Action,
    BatchReport,
    Message,
    Result,
    Status,
    outcome_of,
)
from imgix_autoadder.indexing.state import StateStore
from imgix_autoadder.s3.events import ObjectChange, age_s
from imgix_autoadder.s3.origin import Current
from imgix_autoadder.sources.source_map import SourceMap, Target


class Origin(Protocol):
    def current(self, bucket: str, key: str) -> Current: ...
    def exists(self, bucket: str, key: str) -> bool: ...
    def is_first_version(self, bucket: str, key: str, version_id: str) -> bool | None: ...
    def has_history(self, bucket: str, key: str) -> bool: ...


# Keys of one SQS batch handled at once: waits for a pacing slot hold a worker, never an
# imgix connection, so an add is never queued behind a refresh that waits for its slot.
BATCH_WORKERS = 10


class Indexer:
    def __init__(
        self,
        client: ImgixClient,
        sources: SourceMap,
        state: StateStore,
        log: Log,
        origin: Origin,
        max_parallel: int = 4,
        idempotency: BasePersistenceLayer | None = None,
        fields: FieldWriter | None = None,
    ) -> None:
        self._client = client
        self._fields = fields
        self._origin = origin
        self._sources = sources
        self._state = state
        self._log = log
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers_for(max_parallel), thread_name_prefix="key"
        )
        # The state table orders events; Idempotency adds the in-progress lock, so that two
        # concurrent deliveries of one S3 event cannot both call imgix.
        self._idempotency_config = IdempotencyConfig(
            event_key_jmespath="[bucket, key, sequencer]",
            expires_after_seconds=6 * 3600,
            response_hook=lambda response, _: {**response, "replayed": True},
        )
        self._apply_once = (
            idempotent_function(
                data_keyword_argument="event",
                persistence_store=idempotency,
                config=self._idempotency_config,
            )(self._apply_as_record)
            if idempotency is not None
            else None
        )

    @property
    def _maps_tags(self) -> bool:
        return self._fields is not None and bool(self._fields.tag_keys)

    @staticmethod
    def workers_for(max_parallel: int) -> int:
        """At least one worker per key of a batch, and twice the imgix connections: while
        some wait on DynamoDB, S3 or a pacing slot, the others keep every connection busy."""
        return max(BATCH_WORKERS, 2 * max_parallel)

    def register_context(self, context: Any) -> None:
        """Lets Idempotency expire an in-progress lock when an invocation times out."""
        self._idempotency_config.register_lambda_context(context)

    def process(self, messages: Sequence[Message], deadline: float | None = None) -> BatchReport:
        """`deadline` (time.monotonic()): no imgix call starts that could end after it."""
        self._client.deadline = deadline
        report = BatchReport()
        work: dict[tuple[str, str], KeyWork] = {}
        for message in messages:
            collect(message, self._sources, work, report, self._log)
        outcomes = self._apply_all(list(work.values()))
        for key_work, (result, action) in zip(work.values(), outcomes, strict=True):
            report.counts[
                action.value if result.status is Status.DONE else result.status.value
            ] += 1
            report.counts["key_rejected"] += int(result.key_rejected)
            report.counts["unavailable"] += int(result.imgix_unavailable)
            report.api_latency_ms.extend(result.api_ms)
            if result.api_ms:
                newest = max((change for change, _ in key_work.changes), key=ObjectChange.order)
                age = age_s(newest.event_time, time.time())
                if age is not None:
                    report.event_age_s.append(age)
            for _, message_id in key_work.changes:
                report.merge(message_id, result)
        return report

    def index_existing(
        self, change: ObjectChange, deadline: float | None = None, retell: bool = False
    ) -> Result:
        """Backfill one listed object: add it, refresh it if its ETag changed, or skip it.
        `retell`: an audit found imgix lacking it or holding an older copy."""
        self._client.deadline = deadline
        targets, skip_reason = targets_of(self._sources, change)
        if not targets:
            return Result(Status.SKIPPED, skip_reason)
        work = KeyWork(change.bucket, change.key, targets, [(change, "backfill")], retell=retell)
        return self._apply_all([work])[0][0]

    def _apply_all(self, works: list[KeyWork]) -> list[tuple[Result, Action]]:
        """Read the keys' states in one go, then handle the keys in parallel."""
        try:
            # Only a Source that allows uploads can have been written to by the ingest.
            uploadable = [
                (t.source.id, t.origin_path)
                for w in works
                for t in w.targets
                if t.source.allows_upload
            ]
            known, receipts = self._state.read(((w.bucket, w.key) for w in works), uploadable)
        except Exception as exc:  # no state, no safe decision: the work is delivered again
            self._log.warning("state unreadable", extra={"error": repr(exc)[:500]})
            unread = Result(Status.RETRY, f"state unreadable: {type(exc).__name__}")
            return [(unread, Action.NONE)] * len(works)
        for w in works:
            w.receipts = {
                pair: receipts[pair]
                for t in w.targets
                if (pair := (t.source.id, t.origin_path)) in receipts
            }
        return list(
            self._pool.map(lambda w: self._apply_safely(w, known.get((w.bucket, w.key))), works)
        )

    def _apply_safely(self, work: KeyWork, known: KeyState | None) -> tuple[Result, Action]:
        try:
            latest = work.latest
            if all(change.tags_only for change in work.events) and not self._maps_tags:
                return Result(Status.SKIPPED, "tag change (TAG_FIELDS is off)"), Action.NONE
            due = self._fields is not None and waits_so_far(known) > 0  # back for its fields
            if is_stale(known, latest) and not due:
                # The common no-op (redelivery, older event) costs no lock and no write.
                return Result(Status.SKIPPED, "stale or duplicate event (sequencer)"), Action.NONE
            if self._apply_once is None or not latest.sequencer or due:
                return self._apply(work, known)  # no sequencer, no stable event identity
            event = {"bucket": work.bucket, "key": work.key, "sequencer": latest.sequencer}
            record = self._apply_once(event=event, work=work, known=known)
            if record.get("replayed"):
                return Result(Status.SKIPPED, "duplicate delivery (idempotency)"), Action.NONE
            return Result(Status(record["status"]), record["reason"], record["api_ms"]), Action(
                record["action"]
            )
        except IdempotencyAlreadyInProgressError:
            # A concurrent delivery of the same event holds the lock: look again shortly.
            reason = "another invocation is handling this event"
            return Result(Status.DEFER, reason, delay_s=IN_PROGRESS_DELAY_S), Action.NONE
        except ImgixError as exc:
            result = outcome_of(exc)
            self._log.warning(
                "imgix call failed",
                extra={"key": work.key, "error": str(exc), "status": result.status.value},
            )
            return result, Action.NONE
        except Exception as exc:
            self._log.warning(
                "unexpected failure", extra={"key": work.key, "error": repr(exc)[:500]}
            )
            return Result(Status.RETRY, f"{type(exc).__name__}: {exc}"[:500]), Action.NONE

    def _apply_as_record(
        self, event: dict[str, str], work: KeyWork, known: KeyState | None
    ) -> dict[str, Any]:
        result, action = self._apply(work, known)
        return {
            "status": result.status.value,
            "reason": result.reason,
            "api_ms": result.api_ms,
            "action": action.value,
        }

    def _apply(self, work: KeyWork, known: KeyState | None) -> tuple[Result, Action]:
        """Ask S3 what it holds now, decide (decide.py), make the calls, record the state.

        `known`: the key's state as read before it was handled (one read for the batch).
        A concurrent writer can only have moved it forward since; the conditional write in
        StateStore.record keeps the newest, and Idempotency keeps one event to one call.
        """
        latest = work.latest
        now = self._origin.current(work.bucket, work.key)
        if work.retell and known is not None:
            known = replace(known, told_etag="", told_fingerprint="")  # not what imgix holds
        lookups = Lookups(
            is_first_version=lambda: self._origin.is_first_version(
                work.bucket, work.key, now.version_id
            ),
            never_held=lambda: self._never_held(work, latest),
            has_asset=lambda t: self._client.has_asset(t.source.id, t.origin_path),
        )
        uploaded = work.uploaded_targets(now) if now.exists else []
        decision = decide(
            latest,
            known,
            now,
            work.targets,
            uploaded,
            work.ambiguous,
            lookups,
            work.events,
        )
        api_ms: list[float] = []
        try:
            for target, action in decision.calls:
                api_ms.append(tell(self._client, self._log, action, target))
        except ImgixNotFound as exc:
            if not now.exists:
                raise
            return self._not_found(work, exc), Action.NONE
        as_of = latest
        if known is not None and (known.is_newer_or_same(latest) or not latest.sequencer):
            # A late event that still said something (decide.is_stale), or one S3 gives no
            # sequencer (a tag change): the state stays as of the newest event handled.
            as_of = replace(latest, sequencer=known.sequencer)
        state = decision.state
        if self._fields is not None:
            purged = bool(decision.calls)
            state = self._fields.after(
                work.targets,
                now,
                state,
                purged,
                latest.event_time,
                reread=lambda: self._origin.current(work.bucket, work.key),
            )
        self._state.record(as_of, state)
        if now.exists:
            self._consume_receipts(work, uploaded)
        if waits_so_far(state):
            return Result(Status.DEFER, "custom fields wait for imgix", delay_s=WAIT_S), Action.NONE
        if not decision.calls:
            return Result(Status.SKIPPED, decision.reason), Action.NONE
        return Result(Status.DONE, decision.action.value, api_ms), decision.action

    def _never_held(self, work: KeyWork, latest: ObjectChange) -> bool:
        """S3 says this reading of an EventBridge key was never an object: it has no trace
        of it, and holds the other reading or its history. Only a versioned bucket can say
        so (its delete events carry a version id, and it keeps history); an unversioned one
        keeps no trace of a deleted key, and a key whose only version was deleted leaves
        none either, so then every reading is purged (a purge of a URL that never existed
        is harmless; a lost delete keeps an image up)."""
        if latest.version_id in ("", "null"):  # EventBridge: version-id only when versioned
            return False
        if self._origin.has_history(work.bucket, work.key):
            return False
        other = latest.other_reading
        return bool(other) and (
            self._origin.exists(work.bucket, other) or self._origin.has_history(work.bucket, other)
        )

    def _consume_receipts(self, work: KeyWork, uploaded: list[Target]) -> None:
        for target in uploaded:
            pair = (target.source.id, target.origin_path)
            self._state.consume_receipt(*pair, work.receipts[pair])

    def _not_found(self, work: KeyWork, exc: ImgixNotFound) -> Result:
        """A 404 on add or refresh. Nothing is recorded: imgix was told nothing."""
        for target in work.targets:
            try:
                self._client.get_source(target.source.id)
            except ImgixNotFound:
                return Result(
                    Status.POISON,
                    f"imgix Source {target.source.id} not found (deleted, or another "
                    f"account's): fix IMGIX_SOURCE_IDS, then redrive. {exc}",
                )
        if not self._origin.exists(work.bucket, work.key):
            # Deleted since the HEAD: its own delete event purges it.
            return Result(Status.SKIPPED, f"origin no longer has the object: {exc}")
        return Result(
            Status.POISON,
            f"imgix cannot find an object that S3 holds: check the Source's bucket, prefix "
            f"and credentials. {exc}",
        )
