"""moto as a separate server process: AWS over real HTTP, off this process's memory and GIL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# moto_server lists and stats its ~200 package directories on every request to route it
# (moto.backends.list_of_moto_modules): a quarter of its CPU per call, measured with
# yappi. The list cannot change while the server runs, so the launcher caches it.
# DynamoDB applies a conditional write atomically; moto's threaded server does not lock, so
# two requests could both pass one condition (the shared rate budget relies on it). The
# launcher serialises DynamoDB calls, as AWS behaves.
# ListObjectVersions deep-copies every version of every key in the bucket before it looks
# at the prefix (47 ms a call with 200 objects, 83 ms with 400, measured), where S3 answers
# a one-key prefix in the same time whatever the bucket holds: the indexer asks it for each
# new key, so the stand-in, not the product, set the pace. The launcher lets the listing see
# only the keys under its prefix, which it would keep anyway.
LAUNCH = """
import sys
import threading
import moto.backends
listed = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: listed
from moto.dynamodb.responses import DynamoHandler
_call, _lock = DynamoHandler.call_action, threading.Lock()
def _atomic(self):
    with _lock:
        return _call(self)
DynamoHandler.call_action = _atomic
from moto.s3.models import S3Backend
from moto.s3.utils import _VersionedKeyStore
_listing, _prefix = S3Backend.list_object_versions, threading.local()
_iterlists = _VersionedKeyStore._iterlists
def _under_prefix(self):
    prefix = getattr(_prefix, "value", "")
    return ((k, v) for k, v in _iterlists(self) if k.startswith(prefix))
_VersionedKeyStore.iterlists = _VersionedKeyStore.lists = _under_prefix
def _prefixed_listing(self, bucket_name, *args, **kw):
    _prefix.value = kw.get("prefix") or ""
    try:
        return _listing(self, bucket_name, *args, **kw)
    finally:
        _prefix.value = ""
S3Backend.list_object_versions = _prefixed_listing
from moto.server import main
main(sys.argv[1:])
"""


START_TIMEOUT_S = 120.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Endpoint(str):
    """The server's URL, carrying the server's pid so that benchmarks can read its CPU."""

    pid: int


@contextmanager
def moto_server() -> Iterator[Endpoint]:
    """Start `moto_server` on a free loopback port; yield its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", LAUNCH, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Importing moto takes seconds, many more on a busy machine (the test suite runs
        # beside it): wait for the port by the clock, and say so if it never opens.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"moto_server exited with {server.returncode}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto_server did not listen within {START_TIMEOUT_S:g} s"
                    ) from None
                time.sleep(0.05)
        endpoint = Endpoint(f"http://127.0.0.1:{port}")
        endpoint.pid = server.pid
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
