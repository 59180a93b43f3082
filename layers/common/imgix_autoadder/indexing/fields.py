"""S3 user metadata and object tags as imgix custom fields (opt-in: METADATA_FIELDS,
TAG_FIELDS).

imgix's Asset Manager is searched by custom fields; upload pipelines put the same facts on
the S3 object as user metadata (x-amz-meta-<name>). The product writes the mapped ones the
documented way (imgix-management-js README, "Update custom fields for a single image":
read the asset, change `custom_fields`, PATCH it whole), so that fields people set in the
dashboard survive and the product changes or removes only the fields it owns. The names
are checked at cold start (core/config.py).

imgix documents no way to remove an asset from the Asset Manager: with MARK_DELETED_ASSETS a
deleted key's asset is marked (`origin_status: deleted`, `origin_deleted_at`: the event's
time), and the key's next creation clears the mark.

Tags become custom fields, not categories: imgix documents categories as an Asset Filter
only, never as something a PATCH may write. A tag change arrives as its own event, with no
sequencer: it only says "read the tags again", so the writer reads S3 after each PATCH
and writes again while what S3 holds moved meanwhile (two environments handling two
changes of one key must not leave the older one in imgix).

imgix's add "queue[s]" the path: right after an add, the asset may not exist yet. Then the
key's state says the fields are due (DUE + attempts), and its event comes back later
(deferred, as for a 429); after MAX_WAITS the fields wait for the key's next event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixNotFound
from imgix_autoadder.indexing.key_state import KeyState, Told
from imgix_autoadder.s3.origin import Current
from imgix_autoadder.sources.source_map import Target

DUE = "due:"
DELETED = "deleted"  # told_fields of a key whose asset carries the deleted mark
MARK = ("origin_status", "origin_deleted_at")
MAX_WAITS = 10
MAX_REWRITES = 3
WAIT_S = 60.0


def wanted_fields(
    user_metadata: Mapping[str, str], keys: Sequence[str], prefix: str
) -> dict[str, str]:
    """The custom fields an object's user metadata maps to (a key it lacks: no field)."""
    lowered = {name.lower(): value for name, value in user_metadata.items()}
    return {prefix + key: lowered[key] for key in keys if key in lowered}


def wanted_of(
    now: Current, keys: Sequence[str], tag_keys: Sequence[str], prefix: str
) -> dict[str, str]:
    """Every custom field the object maps to: its user metadata's, then its tags' (tag keys
    match without regard to case, as metadata keys do; S3 keeps those lower-case)."""
    return {
        **wanted_fields(dict(now.user_metadata), keys, prefix),
        **wanted_fields(dict(now.tags), tag_keys, prefix),
    }


def merged(
    current: Mapping[str, object], owned: set[str], wanted: Mapping[str, str]
) -> dict[str, object]:
    """The whole custom_fields to PATCH: every field the product does not own as imgix holds
    it, the owned ones exactly as wanted (an owned field S3 no longer has is removed)."""
    return {**{k: v for k, v in current.items() if k not in owned}, **wanted}


def digest(wanted: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(wanted), sort_keys=True).encode()).hexdigest()[:16]


def waits_so_far(state: KeyState | None) -> int:
    """How many times the key's fields already waited for imgix (0: not waiting)."""
    if state is None or not state.told_fields.startswith(DUE):
        return 0
    return int(state.told_fields[len(DUE) :] or 0)


@dataclass(frozen=True)
class FieldWriter:
    client: ImgixClient
    keys: tuple[str, ...]
    prefix: str = ""
    mark_deleted: bool = False
    tag_keys: tuple[str, ...] = ()

    @property
    def owned(self) -> set[str]:
        marks = MARK if self.mark_deleted else ()
        return {self.prefix + name.lower() for name in (*self.keys, *self.tag_keys, *marks)}

    def mark(self, targets: Sequence[Target], state: KeyState, at: str) -> KeyState:
        """A deleted key: its asset (where imgix holds one) says so, whatever else it holds."""
        if not self.mark_deleted or state.told_fields == DELETED:
            return state
        wanted = {self.prefix + MARK[0]: "deleted", self.prefix + MARK[1]: at}
        for target in targets:  # the fields S3 last had stay: what was deleted, searchable
            self._patch(target, wanted, owned=set(wanted))
        return replace(state, told_fields=DELETED)

    def after(
        self,
        targets: Sequence[Target],
        now: Current,
        state: KeyState,
        purged: bool,
        at: str,
        reread: Callable[[], Current] | None = None,
    ) -> KeyState:
        """The key's fields once its calls are made: written for an object S3 holds, the
        deleted mark for one just purged. Returns the state to record. `reread`: S3's
        answer again, asked after a PATCH (see the module's docstring)."""
        if now.exists and state.told is Told.INDEXED:
            return self.write(targets, now, state, reread)
        if purged and state.told is Told.PURGED:
            return self.mark(targets, state, at)
        return state

    def write(
        self,
        targets: Sequence[Target],
        now: Current,
        state: KeyState,
        reread: Callable[[], Current] | None = None,
    ) -> KeyState:
        """Give imgix the object's fields unless it holds them. A wait (the asset not
        indexed yet) is recorded as DUE."""
        wanted = wanted_of(now, self.keys, self.tag_keys, self.prefix)
        if state.told_fields == digest(wanted):
            return state
        if not wanted and not state.told_fields:  # none to write, and none written before
            return replace(state, told_fields=digest(wanted))
        for _ in range(MAX_REWRITES):
            patched = False
            for target in targets:
                answer = self._patch(target, wanted)
                if answer is None:
                    waits = waits_so_far(state) + 1
                    told = f"{DUE}{waits}" if waits <= MAX_WAITS else ""
                    return replace(state, told_fields=told)
                patched = patched or answer
            if not patched or reread is None:
                break
            again = reread()
            if not again.exists or again.etag != now.etag:
                break  # another object now: its own event writes its fields
            latest = wanted_of(again, self.keys, self.tag_keys, self.prefix)
            if latest == wanted:
                break
            wanted = latest  # changed while this one was written: write what S3 holds now
        else:
            return replace(state, told_fields="")  # still moving: the next event writes again
        return replace(state, told_fields=digest(wanted))

    def _patch(
        self, target: Target, wanted: Mapping[str, str], owned: set[str] | None = None
    ) -> bool | None:
        """Read the asset, PATCH its whole custom_fields if they change (`owned`: the fields
        `wanted` replaces; by default all the product's). True: patched; False: imgix held
        them already; None: imgix holds no such asset (yet)."""
        try:
            asset = self.client.get_asset(target.source.id, target.origin_path)
        except ImgixNotFound:
            return None
        current = (asset.get("attributes") or {}).get("custom_fields") or {}
        fields = merged(current, self.owned if owned is None else owned, wanted)
        if fields == current:
            return False
        self.client.update_asset(target.source.id, target.origin_path, {"custom_fields": fields})
        return True
