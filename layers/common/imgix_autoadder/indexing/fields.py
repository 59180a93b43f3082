"""S3 user metadata as imgix custom fields (opt-in: METADATA_FIELDS).

imgix's Asset Manager is searched by custom fields; upload pipelines put the same facts on
the S3 object as user metadata (x-amz-meta-<name>). The product writes the mapped ones the
documented way (imgix-management-js README, "Update custom fields for a single image":
read the asset, change `custom_fields`, PATCH it whole), so that fields people set in the
dashboard survive and the product changes or removes only the fields it owns. The names
are checked at cold start (core/config.py).

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
from imgix_autoadder.indexing.key_state import KeyState
from imgix_autoadder.sources.source_map import Target

DUE = "due:"
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

    def write(
        self, targets: Sequence[Target], metadata: Mapping[str, str], state: KeyState
    ) -> tuple[KeyState, int]:
        """Give imgix the object's fields unless it holds them: the state to record, and
        how many calls it took. A wait (the asset not indexed yet) is recorded as DUE."""
        wanted = wanted_fields(metadata, self.keys, self.prefix)
        if state.told_fields == digest(wanted):
            return state, 0
        if not wanted and not state.told_fields:  # none to write, and none written before
            return replace(state, told_fields=digest(wanted)), 0
        owned = {self.prefix + key for key in self.keys}
        calls = 0
        for target in targets:
            try:
                asset = self.client.get_asset(target.source.id, target.origin_path)
                calls += 1
            except ImgixNotFound:
                waits = waits_so_far(state) + 1
                due = f"{DUE}{waits}" if waits <= MAX_WAITS else ""
                return replace(state, told_fields=due), calls + 1
            current = (asset.get("attributes") or {}).get("custom_fields") or {}
            fields = merged(current, owned, wanted)
            if fields != current:
                self.client.update_asset(
                    target.source.id, target.origin_path, {"custom_fields": fields}
                )
                calls += 1
        return replace(state, told_fields=digest(wanted)), calls
