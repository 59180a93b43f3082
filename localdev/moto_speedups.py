"""Make in-process moto cost what AWS costs: O(1) per SQS message, O(versions of the prefix)
per S3 version listing, not O(queue) or O(bucket).

Test machinery, not product code. moto 5.2.5 answers correctly but quadratically.
SQS:
- `receive_message` checks each message's retention with `get_queue_attributes`, which
  builds every attribute of the queue, including three counts that walk every message;
- `send_message` builds the same attributes to read ContentBasedDeduplication.
With 1,000 messages queued (the fault-injection test) that was 160 of its 186 s, all in the
stand-in (measured with pyinstrument). The patches keep every answer as moto gives it:
the retention check reads the queue's retention period directly, and the three counts are
taken in one walk, at one instant, while the attributes are built.

S3: `list_object_versions` deep-copies every version of every key in the bucket before it
filters by prefix; the indexer lists one key's versions (Prefix=key), so the main oracle
spent 69 of its 188 s copying other keys (cProfile). On a first page (no KeyMarker) the
patch hands moto only the keys under the prefix, which its own prefix filter keeps anyway;
a later page, whose marker logic walks the keys around the marker, runs moto unchanged.
moto also reloads its S3 url module on every request to any service (12 of the oracle's
100 s), for the one setting it reads, MOTO_S3_CUSTOM_ENDPOINTS: the patch reloads it when
that setting changed.

Step Functions: moto parses a definition with ANTLR on each create and on each execution
(0.1-0.25 s for the upload-session machine); the patch keeps each definition's parse tree
(read-only once built) and builds the program from it afresh, as moto would.

`python -m localdev.moto_speedups ARGS` is `moto_server ARGS` with the patches, and two
for a server: moto_server lists and stats its ~200 package directories on every request to
route it (a quarter of its CPU per call, measured with yappi; the list cannot change while
it runs), and its threaded DynamoDB does not lock, so two requests could both pass one
condition (the shared rate budget relies on it): its calls are serialised, as AWS behaves.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time, unix_time_millis
from moto.s3 import models as s3_models
from moto.s3.utils import _VersionedKeyStore
from moto.sqs import models

_walk = threading.local()
_listing = threading.local()


def _counts(queue: Any) -> tuple[int, int, int]:
    """(visible and not delayed, delayed, not visible), as moto's three properties count."""
    now = unix_time_millis()
    ready = delayed = not_visible = 0
    for message in queue._messages:
        is_visible = now > message.visible_at
        is_delayed = now < message.delayed_until
        ready += is_visible and not is_delayed
        delayed += is_delayed
        not_visible += not is_visible
    return ready, delayed, not_visible


def _from_walk(index: int, count: Callable[[Any], int]) -> property:
    def get(queue: Any) -> int:
        walked = getattr(_walk, "counts", None)
        if walked is not None and walked[0] is queue:
            return int(walked[1][index])
        return count(queue)

    return property(get)


def _attributes_in_one_walk(build: Callable[[Any], dict[str, Any]]) -> property:
    def get(queue: Any) -> dict[str, Any]:
        _walk.counts = (queue, _counts(queue))
        try:
            return build(queue)
        finally:
            _walk.counts = None

    return property(get)


def _retention_ok(backend: Any, queue_name: str, message: Any) -> bool:
    retention_s = int(backend.get_queue(queue_name).message_retention_period)
    return bool(retention_s + message.sent_timestamp / 1000 > unix_time())


def _keys_under_prefix(iterlists: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def lists(store: Any) -> Any:
        prefix = getattr(_listing, "prefix", None)
        if not prefix:
            return iterlists(store)
        return ((key, versions) for key, versions in iterlists(store) if key.startswith(prefix))

    return lists


def _first_page_under_prefix(list_versions: Callable[..., Any]) -> Callable[..., Any]:
    def list_object_versions(backend: Any, *args: Any, **kwargs: Any) -> Any:
        first_page = len(args) == 1 and kwargs.get("key_marker") is None
        _listing.prefix = kwargs.get("prefix") if first_page else None
        try:
            return list_versions(backend, *args, **kwargs)
        finally:
            _listing.prefix = None

    return list_object_versions


def _reloaded_when_endpoints_change(url_module: Callable[[Any], Any]) -> property:
    loaded: dict[str | None, Any] = {}

    def get(backend: Any) -> Any:
        endpoints = os.environ.get("MOTO_S3_CUSTOM_ENDPOINTS")
        if endpoints not in loaded:
            loaded.clear()
            loaded[endpoints] = url_module(backend)
        return loaded[endpoints]

    return property(get)


def _parse_trees_kept(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    trees: dict[str, Any] = {}

    def kept(definition: str) -> Any:
        if definition not in trees:
            program, trees[definition] = parse(definition)  # raises on a syntax error
            return program, trees[definition]
        tree = trees[definition]
        return Preprocessor().visit(tree), tree

    return kept


def apply(step_functions: bool = True) -> None:
    """Patch moto's SQS and S3, and its Step Functions unless told not to (importing its
    parser takes 2.5 s), once per process (idempotent)."""
    queue = models.Queue
    if getattr(queue, "_speedups_applied", False):
        return
    store = _VersionedKeyStore
    lists = _keys_under_prefix(store._iterlists)
    setattr(store, "iterlists", lists)  # noqa: B010
    setattr(store, "lists", lists)  # noqa: B010
    s3 = s3_models.S3Backend
    setattr(s3, "list_object_versions", _first_page_under_prefix(s3.list_object_versions))  # noqa: B010
    url_module = _reloaded_when_endpoints_change(vars(s3)["_url_module"].fget)
    setattr(s3, "_url_module", url_module)  # noqa: B010
    if step_functions:
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

        asl = AmazonStateLanguageParser
        setattr(asl, "parse", staticmethod(_parse_trees_kept(asl.parse)))  # noqa: B010
    counts = (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    )
    for index, name in enumerate(counts):
        setattr(queue, name, _from_walk(index, getattr(queue, name).fget))
    build = vars(queue)["attributes"].fget
    setattr(queue, "attributes", _attributes_in_one_walk(build))  # noqa: B010
    backend = models.SQSBackend
    setattr(backend, "is_message_valid_based_on_retention_period", _retention_ok)  # noqa: B010
    setattr(queue, "_speedups_applied", True)  # noqa: B010


def atomic_dynamodb_calls() -> None:
    """DynamoDB applies a conditional write atomically; serialise moto's calls so it does."""
    from moto.dynamodb.responses import DynamoHandler

    call, lock = DynamoHandler.call_action, threading.Lock()

    def atomic(handler: Any) -> Any:
        with lock:
            return call(handler)

    setattr(DynamoHandler, "call_action", atomic)  # noqa: B010


def serve(argv: list[str]) -> None:
    import moto.backends
    from moto.server import main

    listed = tuple(moto.backends.list_of_moto_modules())
    setattr(moto.backends, "list_of_moto_modules", lambda: listed)  # noqa: B010
    atomic_dynamodb_calls()
    apply(step_functions=False)  # the servers' users (bench, streaming) run no state machine
    main(argv)


if __name__ == "__main__":
    serve(sys.argv[1:])
