"""The benchmark command keeps running (small sizes); its figures are read, not asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.rate_use import slug
from tests.harness.world import ROOT


@pytest.mark.long(55)
def test_bench_smoke_prints_every_figure_with_its_baseline():
    for old in (ROOT / "build" / "bench").glob("*.png"):
        old.unlink()  # each picture must come from this run
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for figure in (
        "1. rate limit use",
        "2. API calls per event",
        "2b. the same with METADATA_FIELDS",
        "3. cold start",
        "4. upload streaming",
        "5. ingest calls",
        "Summary",
    ):
        assert figure in out
    baselines = ("floor_s", "distinct_final_states", "bare_python_ms", "plain_mb_per_s")
    for baseline in (*baselines, "baseline_session_calls"):
        assert baseline in out
    # Each case did its work (rate_use raises otherwise) and is in the summary table.
    lines = [line.strip() for line in out.splitlines()]
    for case in ("add, 1 env", "purge, 3 env", "add, 3 env, jitter"):
        assert lines.count(case) == 1  # its figures ...
        assert any(line.startswith(case + "  ") for line in lines)  # ... and its summary row
    assert "{" not in out.split("Summary")[1]  # no EMF or JSON blobs in the table
    for case in ("add, 1 env", "purge, 3 env", "add, 3 env, jitter"):  # a picture of each
        picture = ROOT / "build" / "bench" / f"{slug(case)}.png"
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
