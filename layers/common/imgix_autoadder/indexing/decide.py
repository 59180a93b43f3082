"""The indexer's decision, with no I/O: what S3 holds now, what imgix was told, the event
-> the imgix calls to make (add, refresh, purge or none) and the key's new state.

The answers that cost a call (S3's version history, imgix's own asset) come in as lazy
lookups, so a decision asks only what its row of the table needs (docs/guarantees.md,
"What the indexer does").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from imgix_autoadder.indexing.key_state import KeyState, Told
from imgix_autoadder.indexing.results import Action
from imgix_autoadder.s3.events import ObjectChange, sortable_sequencer
from imgix_autoadder.s3.origin import Current
from imgix_autoadder.sources.source_map import Target


@dataclass(frozen=True)
class Lookups:
    """Questions asked only when a decision needs the answer."""

    # S3: is this version the key's first (None: an unversioned bucket cannot say)?
    is_first_version: Callable[[], bool | None]
    # S3: has this (EventBridge) reading of the key never been an object?
    never_held: Callable[[], bool]
    # imgix: does this Source hold the asset already?
    has_asset: Callable[[Target], bool]


@dataclass(frozen=True)
class Decision:
    state: KeyState  # what to record once the calls succeed (at once when there are none)
    calls: list[tuple[Target, Action]] = field(default_factory=list)
    reason: str = ""  # why no call is needed

    @property
    def action(self) -> Action:
        return self.calls[0][1] if self.calls else Action.NONE


FIELDS_AFTER_PURGE = "purged"


def is_stale(known: KeyState | None, latest: ObjectChange) -> bool:
    """The event is older than, or the same as, one already handled (by S3's sequencer),
    and says nothing new: a late create of another object than imgix was told, made after
    imgix was told, is not stale. S3 held that object meanwhile and imgix may have fetched
    it for a render (say it was rolled back before its own event arrived)."""
    if known is None or not known.is_newer_or_same(latest):
        return False
    return not _created_after_told(known, latest)


def _created_after_told(known: KeyState, change: ObjectChange) -> bool:
    if change.removed or known.told is not Told.INDEXED:
        return False
    if not change.sequencer or not known.told_sequencer:
        return False
    if sortable_sequencer(change.sequencer) <= known.told_sequencer:
        return False
    other_etag = bool(change.etag) and _etag(change.etag) != _etag(known.told_etag)
    other_version = _versioned(change.version_id) and change.version_id != known.told_version
    return other_etag or other_version


def decide(
    latest: ObjectChange,
    known: KeyState | None,
    now: Current,
    targets: Sequence[Target],
    uploaded: Sequence[Target],
    ambiguous: bool,
    lookups: Lookups,
    changes: Sequence[ObjectChange],
) -> Decision:
    """Make imgix hold what S3 holds now, whatever the event said.

    `latest`: the key's newest event of the batch; `known`: its state before; `now`: S3's
    answer; `uploaded`: the targets that imgix wrote this very object for (the product's
    ingest); `ambiguous`: only EventBridge readings of the key, which may not be the real one;
    `changes`: all the key's events being handled (`latest` among them).
    """
    known = known or KeyState(sequencer="")
    seen = replace(known, s3_present=now.exists, s3_etag=now.etag, s3_version=now.version_id)
    sequencer = sortable_sequencer(latest.sequencer)
    if now.exists:
        if known.holds(now.etag, now.fingerprint) and not _held_other_object(known, changes, now):
            return Decision(seen, reason="imgix holds the current object")
        told = replace(
            seen,
            told=Told.INDEXED,
            told_etag=now.etag,
            told_fingerprint=now.fingerprint,
            told_version=now.version_id,
            told_sequencer=sequencer,
        )
        pending = [t for t in targets if t not in uploaded]
        if not pending:
            return Decision(told, reason="imgix wrote this object (ingest upload)")
        return Decision(told, _index_calls(pending, known, lookups))
    if known.told is Told.NOTHING and (not latest.removed or (ambiguous and lookups.never_held())):
        # Created and already gone (its own delete event purges it), or the reading of an
        # EventBridge key that S3 has never held.
        return Decision(seen, reason="not in S3, and imgix was told nothing")
    if known.purged_since(now.version_id, latest):
        return Decision(seen, reason="already purged")
    told = replace(
        seen,
        told=Told.PURGED,
        told_etag="",
        told_fingerprint="",
        # Not "": the asset imgix keeps listed may hold fields from before, which a
        # re-created key's fields (even none) must replace (indexing/fields.py).
        told_fields=FIELDS_AFTER_PURGE,
        told_version=now.version_id,
        told_sequencer=sequencer,
    )
    return Decision(told, [(t, Action.PURGE) for t in targets])


def _held_other_object(known: KeyState, changes: Sequence[ObjectChange], now: Current) -> bool:
    """S3 held another object after imgix was told, even if it holds the told bytes and
    metadata again now: imgix may have fetched that one for a render meanwhile, so it must
    fetch again (a refresh). An event not handled before says so when its ETag is not the
    told one, or (versioned) when its version is no longer the current one. (An unversioned
    bucket cannot show a metadata-only object that was replaced: same ETag, no history.)"""
    told = _etag(known.told_etag)
    for change in changes:
        if change.removed or is_stale(known, change):
            continue
        if change.etag and _etag(change.etag) != told:
            return True
        replaced = _versioned(now.version_id) and change.version_id != now.version_id
        if _versioned(change.version_id) and replaced:
            return True
    return False


def _versioned(version_id: str) -> bool:
    return version_id not in ("", "null")


def _etag(etag: str) -> str:
    """S3 quotes the ETag in HEAD and listings, not in events."""
    return etag.strip('"').lower()


def _index_calls(
    targets: list[Target], known: KeyState, lookups: Lookups
) -> list[tuple[Target, Action]]:
    """add only when imgix cannot hold older bytes for the key: refresh otherwise, since
    imgix's add does not reprocess an asset it already has. S3's answer holds for every
    Source of the key, so it is asked once; only imgix is asked per Source."""
    if known.told is not Told.NOTHING:
        return [(t, Action.REFRESH) for t in targets]
    first = lookups.is_first_version()
    calls = []
    for target in targets:
        is_new = first
        if is_new is None:  # an unversioned bucket cannot say: ask imgix what it holds
            is_new = not lookups.has_asset(target)
        calls.append((target, Action.ADD if is_new else Action.REFRESH))
    return calls
