"""The README's decision table, row by row, on the pure decision (no S3, no imgix, no moto).

Each lookup records whether it was asked: a row that needs no S3 history or imgix answer
must not ask for one, since each costs a call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from imgix_autoadder.indexing.decide import Decision, Lookups, decide, is_stale
from imgix_autoadder.indexing.key_state import KeyState, Told
from imgix_autoadder.indexing.results import Action
from imgix_autoadder.s3.events import ObjectChange, sortable_sequencer
from imgix_autoadder.s3.origin import Current
from imgix_autoadder.sources.source_map import Source, Target

SOURCE = Source("src1", "web", "s3", "bucket", "", ("web",), allows_upload=True, enabled=True)
OTHER = Source("src2", "cdn", "s3", "bucket", "", ("cdn",), allows_upload=False, enabled=True)
TARGET = Target(SOURCE, "img/a.jpg")
SECOND = Target(OTHER, "img/a.jpg")
PRESENT = Current(exists=True, etag="e2", version_id="v2", fingerprint="f2")
ABSENT = Current(exists=False, version_id="dm1")


def change(removed: bool = False, sequencer: str = "00A1", version_id: str = "v2") -> ObjectChange:
    return ObjectChange(
        bucket="bucket",
        key="img/a.jpg",
        removed=removed,
        sequencer=sequencer,
        etag="" if removed else "e2",
        size=None if removed else 10,
        version_id=version_id,
        event_name="ObjectRemoved:Delete" if removed else "ObjectCreated:Put",
        event_time="2026-12-01T00:00:00.000Z",
    )


def indexed(etag: str = "e1", fingerprint: str = "f1") -> KeyState:
    return KeyState(
        sequencer=sortable_sequencer("0090"),
        told=Told.INDEXED,
        told_etag=etag,
        told_fingerprint=fingerprint,
        told_version="v1",
    )


@dataclass
class Asked:
    """Lazy lookups with fixed answers, recording which were asked."""

    first: bool | None = True
    never_held: bool = False
    imgix_holds: bool = False
    questions: list[str] = field(default_factory=list)

    def lookups(self) -> Lookups:
        def first() -> bool | None:
            self.questions.append("first version")
            return self.first

        def never() -> bool:
            self.questions.append("never held")
            return self.never_held

        def has(target: Target) -> bool:
            self.questions.append(f"has asset {target.source.id}")
            return self.imgix_holds

        return Lookups(first, never, has)


def run(
    now: Current,
    known: KeyState | None,
    latest: ObjectChange | None = None,
    asked: Asked | None = None,
    targets: tuple[Target, ...] = (TARGET,),
    uploaded: tuple[Target, ...] = (),
    ambiguous: bool = False,
) -> Decision:
    asked = asked or Asked()
    latest = latest or change(removed=not now.exists)
    return decide(
        latest, known, now, list(targets), list(uploaded), ambiguous, asked.lookups(), [latest]
    )


def test_a_keys_first_version_is_added():
    asked = Asked(first=True)
    decision = run(PRESENT, None, asked=asked)
    assert decision.calls == [(TARGET, Action.ADD)]
    assert asked.questions == ["first version"]
    assert decision.state.told is Told.INDEXED
    assert (decision.state.told_etag, decision.state.told_fingerprint) == ("e2", "f2")
    assert decision.state.told_version == "v2"
    assert decision.state.told_sequencer == sortable_sequencer("00A1")


def test_a_later_version_that_imgix_was_never_told_of_is_refreshed():
    """imgix may hold older bytes (its own indexing on request): add would not reprocess."""
    asked = Asked(first=False)
    assert run(PRESENT, None, asked=asked).calls == [(TARGET, Action.REFRESH)]


@pytest.mark.parametrize(("imgix_holds", "action"), [(False, Action.ADD), (True, Action.REFRESH)])
def test_unversioned_imgix_is_asked_per_source_whether_it_holds_the_asset(imgix_holds, action):
    asked = Asked(first=None, imgix_holds=imgix_holds)
    decision = run(PRESENT, None, asked=asked, targets=(TARGET, SECOND))
    assert decision.calls == [(TARGET, action), (SECOND, action)]
    assert asked.questions == ["first version", "has asset src1", "has asset src2"]


@pytest.mark.parametrize(
    "known",
    [indexed(etag="e1", fingerprint="f2"), indexed(etag="e2", fingerprint="f1")],
    ids=["new bytes", "new served metadata"],
)
def test_new_bytes_or_served_metadata_for_a_key_imgix_holds_are_refreshed(known):
    asked = Asked()
    decision = run(PRESENT, known, asked=asked)
    assert decision.calls == [(TARGET, Action.REFRESH)]
    assert asked.questions == []  # imgix was told of the key: no need to ask S3's history


def test_an_undelete_or_rollback_after_a_purge_is_refreshed():
    purged = KeyState(sequencer="0090", told=Told.PURGED, told_version="dm0")
    assert run(PRESENT, purged).calls == [(TARGET, Action.REFRESH)]


def test_what_imgix_was_last_given_costs_nothing():
    decision = run(PRESENT, indexed(etag="e2", fingerprint="f2"))
    assert decision.calls == []
    assert decision.reason == "imgix holds the current object"
    assert decision.state.s3_present and decision.state.s3_etag == "e2"


def test_s3_holding_other_bytes_in_between_is_refreshed_though_it_holds_the_told_ones_again():
    """put two, put one again: by the time the first event is handled S3 holds the told
    bytes, but imgix may have fetched the others for a render meanwhile."""
    between = replace(change(sequencer="00A1"), etag="e9")
    decision = run(PRESENT, indexed(etag="e2", fingerprint="f2"), between)
    assert decision.calls == [(TARGET, Action.REFRESH)]


def test_a_version_replaced_before_its_event_is_handled_is_refreshed_for():
    """Versioned: the event names v1.5, S3 holds v2 (the told bytes and metadata) by now:
    v1.5 existed after imgix was told, with metadata no event shows."""
    between = replace(change(sequencer="00A1"), version_id="v1.5")
    decision = run(PRESENT, indexed(etag="e2", fingerprint="f2"), between)
    assert decision.calls == [(TARGET, Action.REFRESH)]


def test_an_identical_rewrite_handled_while_current_costs_nothing():
    """The common case of an identical re-upload: its event names the current version."""
    rewrite = replace(change(sequencer="00A1"), version_id="v2")
    assert run(PRESENT, indexed(etag="e2", fingerprint="f2"), rewrite).calls == []


def test_an_event_handled_before_with_other_bytes_changes_nothing():
    """Its ETag is history the state has already seen (a redelivery in a later batch)."""
    known = indexed(etag="e2", fingerprint="f2")
    old = replace(change(sequencer="0080"), etag="e9")
    decision = decide(
        change(), known, PRESENT, [TARGET], [], False, Asked().lookups(), [old, change()]
    )
    assert decision.calls == []


def test_the_same_bytes_with_the_quotes_s3_puts_in_a_listing_are_the_same():
    quoted = replace(change(), etag='"E2"')
    assert run(PRESENT, indexed(etag="e2", fingerprint="f2"), quoted).calls == []


def test_a_state_from_before_fingerprints_holds_any_metadata():
    assert run(PRESENT, indexed(etag="e2", fingerprint="")).calls == []


def test_nothing_in_s3_purges_every_source():
    decision = run(ABSENT, indexed(), targets=(TARGET, SECOND))
    assert decision.calls == [(TARGET, Action.PURGE), (SECOND, Action.PURGE)]
    assert decision.state.told is Told.PURGED
    assert decision.state.told_version == "dm1"
    assert not decision.state.s3_present and decision.state.told_etag == ""


def test_the_same_absence_is_purged_once():
    purged = KeyState(sequencer="0090", told=Told.PURGED, told_version="dm1")
    decision = run(ABSENT, purged)
    assert (decision.calls, decision.reason) == ([], "already purged")


def test_a_new_delete_marker_after_a_purge_is_purged_again():
    """A re-created and re-deleted key whose create this batch never saw."""
    purged = KeyState(sequencer="0090", told=Told.PURGED, told_version="dm0")
    assert run(ABSENT, purged).calls == [(TARGET, Action.PURGE)]


def test_unversioned_a_purge_is_repeated_only_for_a_later_event():
    purged = KeyState(sequencer="0090", told=Told.PURGED, told_sequencer=sortable_sequencer("0090"))
    unversioned = Current(exists=False)
    assert run(unversioned, purged, change(removed=True, sequencer="0080")).calls == []
    later = run(unversioned, purged, change(removed=True, sequencer="00A0"))
    assert later.calls == [(TARGET, Action.PURGE)]


def test_a_create_already_gone_costs_nothing_its_own_delete_purges():
    decision = run(ABSENT, None, latest=change(removed=False))
    assert (decision.calls, decision.reason) == ([], "not in S3, and imgix was told nothing")


def test_a_delete_of_a_key_imgix_was_never_told_of_still_purges():
    """imgix may have indexed it on request: only a purge removes it from its caches."""
    asked = Asked()
    assert run(ABSENT, None, change(removed=True), asked=asked).calls == [(TARGET, Action.PURGE)]
    assert asked.questions == []  # not an EventBridge reading: nothing to ask S3


@pytest.mark.parametrize(("never_held", "purges"), [(True, False), (False, True)])
def test_an_eventbridge_reading_is_purged_unless_s3_never_held_it(never_held, purges):
    asked = Asked(never_held=never_held)
    decision = run(ABSENT, None, change(removed=True), asked=asked, ambiguous=True)
    assert bool(decision.calls) is purges
    assert asked.questions == ["never held"]


def test_an_object_imgix_wrote_for_every_source_costs_nothing():
    decision = run(PRESENT, None, uploaded=(TARGET,))
    assert (decision.calls, decision.reason) == ([], "imgix wrote this object (ingest upload)")
    assert decision.state.told is Told.INDEXED  # so a redelivery is skipped as held


def test_only_the_sources_imgix_did_not_write_for_are_told():
    asked = Asked(first=True)
    decision = run(PRESENT, None, asked=asked, targets=(TARGET, SECOND), uploaded=(TARGET,))
    assert decision.calls == [(SECOND, Action.ADD)]


@pytest.mark.parametrize(
    ("sequencer", "stale"), [("0080", True), ("0090", True), ("00A0", False), ("", False)]
)
def test_an_older_or_duplicate_event_is_stale(sequencer, stale):
    """By S3's sequencer; without one, S3 itself decides (never stale)."""
    assert is_stale(indexed(), change(sequencer=sequencer)) is stale
    assert is_stale(None, change(sequencer=sequencer)) is False


def test_a_late_create_of_another_object_after_imgix_was_told_is_refreshed_for():
    """Found by the oracle: v2 put (its event late), then rolled back to v1 (that event
    handled first: S3 held the told v1, nothing to do). v2's event then arrives older than
    the state, but newer than what imgix was told: v2 was served meanwhile."""
    known = replace(indexed(), told_sequencer=sortable_sequencer("0070"))
    rolled_back = Current(exists=True, etag="e1", version_id="v1", fingerprint="f1")
    late = change(sequencer="0080", version_id="v2")
    assert not is_stale(known, late)
    assert run(rolled_back, known, late).calls == [(TARGET, Action.REFRESH)]
    before_told = change(sequencer="0060", version_id="v0")  # history imgix was told after
    assert is_stale(known, before_told)
