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
        [sys.executable, "-m", "localdev.moto_speedups", "-H", "127.0.0.1", "-p", str(port)],
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
