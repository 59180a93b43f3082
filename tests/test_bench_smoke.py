"""The benchmark command keeps running (small sizes); its figures are read, not asserted."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_bench_smoke_prints_the_four_figures_with_baselines():
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
        "1. indexer throughput",
        "2. API calls per event",
        "3. cold start",
        "4. upload streaming",
    ):
        assert figure in out
    for baseline in ("baseline_s", "distinct_final_states", "bare_python_ms", "plain_mb_per_s"):
        assert baseline in out
    assert "http_429                     0" in out  # pacing kept the emulator's limit
    assert "adds                         20" in out  # the indexer did the work it timed
