"""The product's promise, as a property: imgix ends holding what S3 holds.

Hypothesis draws sequences of S3 operations on the versioned origin bucket (moto): put
with the same or other bytes, copy in place with new metadata, copy to another key,
multipart upload, delete, delete of a noncurrent version or of the delete marker, delete
of the current version, lifecycle expiry; on keys under the Source's prefix and outside
it. Their events, in AWS's notification or EventBridge shape, are delivered as S3 does:
some late, some twice, shuffled, in batches of any size, some batches by two execution
environments at once; in about one phase in five imgix is down (every call answers 503 or
resets), and that phase's records are delivered again once it is back. At the end,
against the emulator's record:

- every key S3 holds is indexed with its current ETag, fetched by imgix after its last
  change;
- every key S3 holds carries its user metadata `sku` as the asset's custom field (when
  imgix indexes an add at once: a queued add's fields wait for the asset);
- every key whose last operation removed it was purged (every domain) after that removal;
- keys outside the prefix cost nothing, and no event costs more than one call group that
  imgix acted on (the calls an outage failed are bounded by tests/integration/test_outage.py).

`make test` runs 60 deterministic examples (derandomized: the same ones every run, so the
suite never fails by chance) in under a minute; `ORACLE_RANDOM=1 ORACLE_EXAMPLES=500
.venv/bin/pytest tests/properties/test_oracle.py` explores at random. A failing sequence found that
way is kept as a named scenario in tests/integration/test_event_shapes.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgix_autoadder.rate.breaker import MAX_OPEN_S, PROBE_S, VIEW_OPEN_S
from localdev.provision import EVENTS_QUEUE
from tests.harness.events import notification, s3_record, sqs_event, take_queued
from tests.harness.sim_time import SimulatedTime
from tests.harness.world import BUCKET, DOMAINS, EVENTS, FakeContext, Stack, load_function

EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "60"))
NAMES = ("a.jpg", "b c.jpg", "d+e.jpg")
BODIES = (b"one", b"two", b"three")

KEY = st.integers(0, 3)  # an index into the names the operation can act on (World.eligible)
# What any bucket allows; a versioned one adds its history operations.
EVERY_BUCKET_OPS = (
    st.tuples(st.just("put"), KEY, st.sampled_from(BODIES)),
    st.tuples(st.just("meta"), KEY, st.integers(1, 3)),
    st.tuples(st.just("copy"), KEY, st.sampled_from((*NAMES, "outside"))),
    st.tuples(st.just("multipart"), KEY, st.sampled_from(BODIES)),
    st.tuples(st.just("delete"), KEY),
)
OPS = st.one_of(
    *EVERY_BUCKET_OPS,
    st.tuples(st.just("delete_noncurrent"), KEY, st.integers(0, 5)),
    st.tuples(st.just("undelete"), KEY),
    st.tuples(st.just("rollback"), KEY),
    st.tuples(st.just("expire"), KEY),
)
# An existing bucket may be unversioned, and the stack starts watching it late: objects put
# before (their events never handled), later deleted through EventBridge.
UNVERSIONED_OPS = st.one_of(
    *EVERY_BUCKET_OPS, st.tuples(st.just("unseen_put"), KEY, st.sampled_from(BODIES))
)


@dataclass
class Event:
    key: str
    name: str  # notification eventName
    sequencer: str
    version_id: str
    etag: str = ""
    size: int | None = None
    unseen: bool = False  # before the stack watched the bucket: never delivered

    def ambiguous(self, eventbridge: bool, encode_key: bool) -> bool:
        """An EventBridge key with two readings (as given, decoded)."""
        raw = quote_plus(self.key, safe="/") if encode_key else self.key
        return eventbridge and unquote_plus(raw) != raw

    def body(self, eventbridge: bool, encode_key: bool) -> str:
        if not eventbridge:
            record = s3_record(
                self.name,
                self.key,
                self.etag,
                self.size,
                self.sequencer,
                version_id=self.version_id or None,  # S3 sends none for an unversioned bucket
            )
            return notification(record)
        removed = not self.name.startswith("ObjectCreated")
        sample = "eventbridge-object-deleted.json" if removed else "eventbridge-object-created.json"
        document = json.loads((EVENTS / sample).read_text())
        obj: dict[str, Any] = {
            "key": quote_plus(self.key, safe="/") if encode_key else self.key,
            "sequencer": self.sequencer,
        }
        if self.version_id:  # AWS: present for a versioned bucket only
            obj["version-id"] = self.version_id
        if removed:
            marker = self.name.endswith("DeleteMarkerCreated")
            document["detail"]["reason"] = (
                "Lifecycle Expiration" if self.name.startswith("Lifecycle") else "DeleteObject"
            )
            document["detail"]["deletion-type"] = (
                "Delete Marker Created" if marker else "Permanently Deleted"
            )
        else:
            obj.update(etag=self.etag, size=self.size)
            document["detail"]["reason"] = {
                "ObjectCreated:Put": "PutObject",
                "ObjectCreated:Copy": "CopyObject",
                "ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
            }[self.name]
        document["detail"]["object"] = obj
        return json.dumps(document)


@dataclass
class World:
    """The origin bucket under one example's own prefix, and what happened to each key."""

    stack: Stack
    prefix: str
    versioned: bool = True
    sequence: int = 0x00F0000000000000
    # Keys whose current bytes came from a put the stack never heard of (the backfill's
    # work, not the indexer's): not held against imgix.
    unseen: set[str] = field(default_factory=set)
    last_change: dict[str, float] = field(default_factory=dict)
    last_removal: dict[str, float] = field(default_factory=dict)
    last_served: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Unversioned: the change before the last, to see a metadata-only excursion undone.
    before_last: dict[str, tuple[tuple[str, str], float]] = field(default_factory=dict)

    def key(self, name: str) -> str:
        if name == "outside":
            return f"docs/{self.prefix}/outside.jpg"
        return f"images/{self.prefix}/{name}"

    def sequencer(self) -> str:
        self.sequence += 0x10
        return f"{self.sequence:018X}"

    def listing(self, key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        listed = self.stack.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        versions = [v for v in listed.get("Versions", []) if v["Key"] == key]
        markers = [m for m in listed.get("DeleteMarkers", []) if m["Key"] == key]
        return versions, markers

    def exists(self, key: str) -> bool:
        versions, _ = self.listing(key)
        return any(v["IsLatest"] for v in versions)

    def served(self, key: str) -> tuple[str, str] | None:
        """What imgix would serve for the key: its bytes (ETag) and served metadata."""
        try:
            head = self.stack.s3.head_object(Bucket=BUCKET, Key=key)
        except Exception:
            return None
        return head["ETag"], str(head.get("CacheControl", ""))

    def eligible(self, kind: str) -> list[str]:
        """The names an operation of this kind can act on now (so that few are no-ops)."""
        names = [*NAMES, "outside"]
        if kind in ("meta", "copy", "rollback"):
            return [n for n in names if self.exists(self.key(n))] or names
        if kind == "undelete":
            return [
                n for n in names if any(m["IsLatest"] for m in self.listing(self.key(n))[1])
            ] or names
        if kind == "delete_noncurrent":
            with_history = [
                n for n in names if sum(len(part) for part in self.listing(self.key(n))) > 1
            ]
            return with_history or names
        return names

    def apply(self, op: tuple[Any, ...]) -> Event | None:
        choices = self.eligible(op[0])
        op = (op[0], choices[op[1] % len(choices)], *op[2:])
        s3, kind, key = self.stack.s3, op[0], self.key(op[1])
        # A copy changes its target (op[2]), not its source: the change is the target's.
        changed_key = self.key(op[2]) if kind == "copy" else key
        before = self.served(changed_key)
        event = self._do(s3, kind, key, op)
        if event is None:
            return None
        if event.unseen:
            self.unseen.add(event.key)
            served = self.served(event.key)
            if served is not None:  # what S3 held before the stack watched
                self.last_served[event.key] = served
            return event
        self.unseen.discard(event.key)
        key = event.key
        assert key == changed_key, (key, changed_key)
        now, after = time.monotonic(), self.served(key)
        if after is not None and after != self.last_served.get(key):
            # New bytes or metadata since it last existed: imgix must fetch again. (An
            # undelete that restores what imgix still holds is not a change.)
            previous = self.last_served.get(key)
            undone = self.before_last.get(key)
            if (
                not self.versioned
                and previous is not None
                and undone is not None
                and undone[0] == after
                and previous[0] == after[0]
            ):
                # Unversioned, the same bytes: a metadata-only change undone before its
                # event is handled leaves no trace any S3 reader can see (the same ETag,
                # no history, LastModified to the second). The key is as it was before.
                self.last_change[key] = undone[1]
            else:
                if previous is not None:
                    self.before_last[key] = (previous, self.last_change.get(key, 0.0))
                self.last_change[key] = now
            self.last_served[key] = after
        elif after is None and before is not None:
            self.last_removal[key] = now
        return event

    def _do(self, s3: Any, kind: str, key: str, op: tuple[Any, ...]) -> Event | None:
        seq = self.sequencer()
        if kind == "unseen_put":
            out = s3.put_object(Bucket=BUCKET, Key=key, Body=op[2])
            return Event(key, "ObjectCreated:Put", seq, "", out["ETag"].strip('"'), unseen=True)
        if kind in ("put", "multipart"):
            body = op[2]
            sku = {"sku": f"{kind}-{seq[-4:]}"}  # user metadata, a custom field (METADATA_FIELDS)
            if kind == "put":
                out = s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=sku)
                name = "ObjectCreated:Put"
            else:
                upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, Metadata=sku)[
                    "UploadId"
                ]
                part = s3.upload_part(
                    Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=body
                )
                out = s3.complete_multipart_upload(
                    Bucket=BUCKET,
                    Key=key,
                    UploadId=upload,
                    MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
                )
                name = "ObjectCreated:CompleteMultipartUpload"
            version = out.get("VersionId", "")
            return Event(key, name, seq, version, out["ETag"].strip('"'), len(body))
        if kind in ("meta", "copy"):
            source = key  # copy: from an existing key to the drawn one
            target = key if kind == "meta" else self.key(op[2])
            if not self.exists(source) or (kind == "copy" and source == target):
                return None  # S3 refuses a copy onto itself that changes nothing
            extra = (
                {
                    "MetadataDirective": "REPLACE",
                    "CacheControl": f"max-age={60 * op[2]}",
                    "Metadata": {"sku": f"meta-{op[2]}"},
                }
                if kind == "meta"
                else {}
            )
            out = s3.copy_object(
                Bucket=BUCKET, Key=target, CopySource={"Bucket": BUCKET, "Key": source}, **extra
            )
            etag = out["CopyObjectResult"]["ETag"].strip('"')
            return Event(target, "ObjectCreated:Copy", seq, out.get("VersionId", ""), etag, 1)
        if kind == "delete" and not self.versioned:
            if not self.exists(key):
                return None  # S3 sends no event for a delete of nothing
            s3.delete_object(Bucket=BUCKET, Key=key)
            return Event(key, "ObjectRemoved:Delete", seq, "")
        if kind in ("delete", "expire"):
            # AWS adds a delete marker even for a missing key; moto adds none then. AWS's
            # event of a versioned bucket always names the marker: so does this one.
            marker = s3.delete_object(Bucket=BUCKET, Key=key).get("VersionId") or f"m{seq}"
            prefix = "LifecycleExpiration" if kind == "expire" else "ObjectRemoved"
            return Event(key, f"{prefix}:DeleteMarkerCreated", seq, marker)
        versions, markers = self.listing(key)
        if kind == "delete_noncurrent":
            chosen = [e for e in versions + markers if not e["IsLatest"]]
        elif kind == "undelete":
            chosen = [m for m in markers if m["IsLatest"]]
        else:  # rollback: delete the current version
            chosen = [v for v in versions if v["IsLatest"]]
        if not chosen:
            return None
        version = chosen[op[2] % len(chosen) if kind == "delete_noncurrent" else 0]["VersionId"]
        s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
        return Event(key, "ObjectRemoved:Delete", seq, version)


@pytest.fixture
def environments(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Two warm execution environments of the indexer, keeping x-amz-meta-sku as the
    custom field `sku`."""
    monkeypatch.setenv("METADATA_FIELDS", "sku")
    return [load_function("indexer"), load_function("indexer")]


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> SimulatedTime:
    """The breaker's clock, moved on past its openings after an injected outage."""
    return SimulatedTime(monkeypatch)


def run_batches(environments: list[Any], batches: list[tuple[list[str], bool]]) -> list[str]:
    """Deliver each batch; a batch marked concurrent runs beside the next one. Returns the
    bodies SQS would deliver again (failed records)."""
    again: list[str] = []
    lock = threading.Lock()

    def run(env: Any, bodies: list[str]) -> None:
        event = sqs_event(*bodies)
        response = env.lambda_handler(event, FakeContext())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        with lock:
            again.extend(r["body"] for r in event["Records"] if r["messageId"] in failed)

    index = 0
    while index < len(batches):
        bodies, concurrent = batches[index]
        if concurrent and index + 1 < len(batches):
            beside = threading.Thread(target=run, args=(environments[1], batches[index + 1][0]))
            beside.start()
            run(environments[0], bodies)
            beside.join()
            index += 2
        else:
            run(environments[0], bodies)
            index += 1
    return again


def deferred_bodies() -> list[str]:
    """Records an environment handed back to the queue (delayed): taken off the queue and
    delivered now, since the oracle does not wait out their delays."""
    return take_queued(EVENTS_QUEUE)


examples = iter(range(10**6))


# Derandomized in `make test`: the same examples every run, so the suite never fails by chance.
ORACLE_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": "ORACLE_RANDOM" not in os.environ,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,
}


@pytest.mark.long(37)
@settings(max_examples=EXAMPLES, **ORACLE_SETTINGS)
@given(data=st.data())
def test_imgix_ends_holding_what_s3_holds(
    stack: Stack, environments: list[Any], sim: SimulatedTime, data: st.DataObject
):
    check_promise(stack, environments, sim, data.draw, f"ex{next(examples)}")


@pytest.mark.long(45)
@pytest.mark.parametrize("origin_versioned", [False])
@settings(max_examples=max(10, EXAMPLES // 2), **ORACLE_SETTINGS)
@given(data=st.data())
def test_imgix_ends_holding_what_an_unversioned_s3_holds(
    stack: Stack, environments: list[Any], sim: SimulatedTime, data: st.DataObject
):
    """An existing, unversioned bucket: no history, objects from before the stack, their
    deletes through EventBridge with keys of two readings. No delete is ever lost."""
    check_promise(stack, environments, sim, data.draw, f"un{next(examples)}", versioned=False)


def check_promise(
    stack: Stack,
    environments: list[Any],
    sim: SimulatedTime,
    draw: Any,
    prefix: str,
    versioned: bool = True,
) -> None:
    world = World(stack, prefix, versioned=versioned)
    stack.emulator.faults.clear()  # an example Hypothesis stopped mid-outage left them on
    sim.offset_s += MAX_OPEN_S + PROBE_S  # and left the breaker open
    # Both answers imgix's documents allow: an add indexed now or queued for later, and a
    # repeated purge within 10 s answered 409 or 200.
    timing = draw(st.sampled_from(["now", "later"]))
    stack.emulator.asset_api.add_timing = timing
    stack.emulator.purge_api.repeat_answer = draw(st.sampled_from(["409", "200"]))
    ops_drawn = OPS if versioned else UNVERSIONED_OPS
    if not versioned:  # the bucket held objects before the stack watched it
        for index in range(len(NAMES)):
            world.apply(("unseen_put", index, BODIES[index % len(BODIES)]))
    phases = draw(st.lists(st.lists(ops_drawn, min_size=1, max_size=4), min_size=1, max_size=4))
    pending: list[tuple[int, str]] = []  # (phase to deliver in, body)
    distinct = 0
    for number, ops in enumerate(phases):
        for op in ops:
            event = world.apply(op)
            if event is None or event.unseen:
                continue
            shape = draw(st.tuples(st.booleans(), st.booleans()))
            mine = event.key.startswith("images/")
            # An EventBridge delete of a two-reading key purges both readings where S3 keeps
            # no trace of either: always unversioned; versioned when the key's only version
            # is gone (or, on moto, which adds no delete marker for a missing key, when it
            # never existed; AWS adds one).
            both = event.name.startswith(("ObjectRemoved", "LifecycleExpiration"))
            distinct += mine * (2 if both and event.ambiguous(*shape) else 1)
            body = event.body(eventbridge=shape[0], encode_key=shape[1])
            # Mostly delivered in its own phase, sometimes in a later one.
            late = number + max(0, draw(st.integers(-2, len(phases) - number)))
            copies = 2 if draw(st.integers(0, 4)) == 0 else 1  # at least once
            pending += [(late, body)] * copies
        due = [body for phase, body in pending if phase <= number]
        pending = [(phase, body) for phase, body in pending if phase > number]
        if draw(st.integers(0, 4)) == 0:  # imgix is down while this phase is delivered
            held = deliver_during_outage(stack, environments, sim, draw, due)
            pending += [(number + 1, body) for body in held]
        else:
            deliver(environments, draw, due, sim)
    deliver(environments, draw, [body for _, body in pending], sim)

    stack.emulator.settle()  # imgix's add queue runs ("queue[s]" the path), minutes later
    # A queued add's fields wait for the asset, which here appears only now, after every
    # delivery (their waiting is tests/properties/test_custom_fields.py's).
    check_against_s3(world, distinct, fields=timing == "now")


def deliver(environments: list[Any], draw: Any, bodies: list[str], sim: SimulatedTime) -> None:
    """One shuffled, batched, partly concurrent delivery (all drawn here); then what SQS
    would deliver again (failed or deferred records) until nothing is left. The later
    rounds draw nothing: their content depends on timing, and Hypothesis must be able to
    replay every draw."""
    order = draw(st.permutations(bodies))
    batches, start = [], 0
    while start < len(order):
        size = draw(st.integers(1, 4))
        batches.append((list(order[start : start + size]), draw(st.booleans())))
        start += size
    again = run_batches(environments, batches) + deferred_bodies()
    for _ in range(20):
        if not again:
            return
        # A deferred record returns after its delay (at least 1 s, Redelivery), and an
        # environment reads the breaker's state again after VIEW_OPEN_S: so does time here.
        sim.offset_s += max(1.0, VIEW_OPEN_S)
        again = run_batches(environments, [([b], False) for b in again]) + deferred_bodies()
    raise AssertionError(f"records still undelivered after 20 rounds: {again[:2]}")


def deliver_during_outage(
    stack: Stack, environments: list[Any], sim: SimulatedTime, draw: Any, bodies: list[str]
) -> list[str]:
    """One delivery while every imgix call answers 503 or resets: the records come back
    (deferred, or failed back once) to be delivered after imgix returns, and the breaker's
    time moves past its opening, so that the next call probes."""
    order = draw(st.permutations(bodies))
    batches = [([body], draw(st.booleans())) for body in order]
    # After the draws: Hypothesis may stop an example at a draw, and the faults must not
    # outlive this delivery.
    stack.emulator.faults.randomly(1.0, ("503", "reset"), seed=len(bodies))
    try:
        held = run_batches(environments, batches) + deferred_bodies()
    finally:
        stack.emulator.faults.clear()
    sim.offset_s += MAX_OPEN_S + PROBE_S
    return held


def check_against_s3(world: World, distinct_events: int, fields: bool = True) -> None:
    emulator, source = world.stack.emulator, world.stack.source_id
    # What imgix acted on: a call an injected outage failed did nothing there.
    calls = [
        c
        for c in emulator.calls
        if c.route in ("add_asset", "refresh_asset", "purge") and not c.fault
    ]
    mine = f"{world.prefix}/"
    purges: dict[str, list[float]] = defaultdict(list)
    for at, url in emulator.purge_log:
        purges[unquote(urlsplit(url).path.lstrip("/"))].append(at)
    problems = []
    for name in NAMES:
        key = world.key(name)
        path = key.removeprefix("images/")
        head = current(world, key)
        asset = emulator.assets.get((source, path))
        if key in world.unseen:
            continue  # put before the stack watched, never announced: the backfill's work
        if head is not None:
            changed = world.last_change.get(key, 0.0)
            if asset is None or asset.etag != head:
                problems.append(f"{key}: S3 holds {head}, imgix holds {asset and asset.etag}")
            elif fields and (held := asset.editable.get("custom_fields", {})) != (
                wanted := sku_field(world, key)
            ):
                problems.append(f"{key}: S3's metadata maps to {wanted}, imgix holds {held}")
            elif asset.fetched_at < changed:
                made = [
                    (c.route, c.status, round(c.at - changed, 3))
                    for c in emulator.calls
                    if c.origin_path == path
                    and c.route in ("add_asset", "refresh_asset", "get_asset")
                ]
                problems.append(
                    f"{key}: imgix has not fetched it since its last change "
                    f"(calls, seconds after the change: {made})"
                )
        elif key in world.last_removal:
            removed = world.last_removal[key]
            after = [at for at in purges.get(path, []) if at > removed]
            if len(after) < len(DOMAINS):
                problems.append(f"{key}: removed from S3, but not purged since")
    outside = [c for c in emulator.calls if "outside" in c.raw_path]
    if outside:
        problems.append(f"calls for a key outside the prefix: {outside}")
    groups = sum(1 for c in calls if c.route != "purge" and c.origin_path.startswith(mine))
    groups += sum(len(v) for p, v in purges.items() if p.startswith(mine)) / len(DOMAINS)
    if groups > distinct_events:
        problems.append(f"{groups:g} imgix call groups for {distinct_events} distinct events")
    assert not problems, "\n".join(problems)


def sku_field(world: World, key: str) -> dict[str, str]:
    metadata = world.stack.s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    return {"sku": metadata["sku"]} if "sku" in metadata else {}


def current(world: World, key: str) -> str | None:
    versions, _ = world.listing(key)
    latest = [v for v in versions if v["IsLatest"]]
    return latest[0]["ETag"].strip('"') if latest else None
