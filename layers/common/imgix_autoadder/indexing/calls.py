"""One imgix call of a decision (add, refresh or purge), timed and logged."""

from __future__ import annotations

import time

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.indexing.coalesce import Log
from imgix_autoadder.indexing.results import Action
from imgix_autoadder.sources.source_map import Target


def tell(client: ImgixClient, log: Log, action: Action, target: Target) -> float:
    """Make the call; returns how long imgix took, in milliseconds."""
    source, path = target.source, target.origin_path
    started = time.perf_counter()
    if action is Action.ADD:
        client.add_asset(source.id, path)
    elif action is Action.REFRESH:
        client.refresh_asset(source.id, path)
    else:
        for url in source.urls(path):  # a purge is per URL: every domain of the Source
            client.purge(url)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        f"imgix {action.value}",
        extra={"source_id": source.id, "origin_path": path, "ms": elapsed_ms},
    )
    return elapsed_ms
