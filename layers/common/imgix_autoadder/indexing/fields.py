"""S3 user metadata as imgix custom fields (opt-in: METADATA_FIELDS).

imgix's Asset Manager is searched by custom fields; upload pipelines put the same facts on
the S3 object as user metadata (x-amz-meta-<name>). The product writes the mapped ones the
documented way (imgix-management-js README, "Update custom fields for a single image":
read the asset, change `custom_fields`, PATCH it whole), so that fields people set in the
dashboard survive and the product changes or removes only the fields it owns. The names
are checked at cold start (core/config.py).

imgix documents no way to remove an asset from the Asset Manager: with MARK_DELETED_ASSETS a
deleted key's asset is marked (`origin_status: deleted`, `origin_deleted_at`: the event's
time), and the key's next creation clears the mark.

imgix's add "queue[s]" the path: right after an add, the asset may not exist yet. Then the
key's state says the fields are due (DUE + attempts), and its event comes back later
(deferred, as for a 429); after MAX_WAITS the fields wait for the key's next event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
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
WAIT_S = 60.0


def wanted_fields(
    user_metadata: Mapping[str, str], keys: Sequence[str], prefix: str
) -> dict[str, str]:
    """The custom fields an object's user metadata maps to (a key it lacks: no field)."""
    lowered = {name.lower(): value for name, value in user_metadata.items()}
    return {prefix + key: lowered[key] for key in keys if key in lowered}


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

    @property
    def owned(self) -> set[str]:
        marks = MARK if self.mark_deleted else ()
        return {self.prefix + name for name in (*self.keys, *marks)}

    def mark(self, targets: Sequence[Target], state: KeyState, at: str) -> KeyState:
        """A deleted key: its asset (where imgix holds one) says so, whatever else it holds."""
        if not self.mark_deleted or state.told_fields == DELETED:
            return state
        wanted = {self.prefix + MARK[0]: "deleted", self.prefix + MARK[1]: at}
        for target in targets:  # the fields S3 last had stay: what was deleted, searchable
            self._patch(target, wanted, owned=set(wanted))
        return replace(state, told_fields=DELETED)

    def after(
        self, targets: Sequence[Target], now: Current, state: KeyState, purged: bool, at: str
    ) -> KeyState:
        """The key's fields once its calls are made: written for an object S3 holds, the
        deleted mark for one just purged. Returns the state to record."""
        if now.exists and state.told is Told.INDEXED:
            return self.write(targets, dict(now.user_metadata), state)
        if purged and state.told is Told.PURGED:
            return self.mark(targets, state, at)
        return state

    def write(
        self, targets: Sequence[Target], metadata: Mapping[str, str], state: KeyState
    ) -> KeyState:
        """Give imgix the object's fields unless it holds them. A wait (the asset not
        indexed yet) is recorded as DUE."""
        wanted = wanted_fields(metadata, self.keys, self.prefix)
        if state.told_fields == digest(wanted):
            return state
        if not wanted and not state.told_fields:  # none to write, and none written before
            return replace(state, told_fields=digest(wanted))
        for target in targets:
            if not self._patch(target, wanted):
                waits = waits_so_far(state) + 1
                return replace(state, told_fields=f"{DUE}{waits}" if waits <= MAX_WAITS else "")
        return replace(state, told_fields=digest(wanted))

    def _patch(
        self, target: Target, wanted: Mapping[str, str], owned: set[str] | None = None
    ) -> bool:
        """Read the asset, PATCH its whole custom_fields if they change (`owned`: the fields
        `wanted` replaces; by default all the product's); False when imgix holds no such
        asset (yet)."""
        try:
            asset = self.client.get_asset(target.source.id, target.origin_path)
        except ImgixNotFound:
            return False
        current = (asset.get("attributes") or {}).get("custom_fields") or {}
        fields = merged(current, self.owned if owned is None else owned, wanted)
        if fields != current:
            self.client.update_asset(
                target.source.id, target.origin_path, {"custom_fields": fields}
            )
        return True
