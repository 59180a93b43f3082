"""Pictures of a rate case, from the calls the emulator recorded (build/bench/calls-*.json):
calls a second against the published limit, and freshness as a CDF against the floor.
matplotlib is a dev requirement only; it never reaches the Lambda layer."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def plot_case(
    name: str, dump: Path, route: str, limit_per_s: float, floor_s: float, out: Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    recorded: dict[str, Any] = json.loads(dump.read_text())
    burst_at = float(recorded["burst_at"])
    calls = [c for c in recorded["calls"] if c["route"] == route and c["at"] >= burst_at]
    done = sorted(c["at"] - burst_at for c in calls if c["status"] < 300)
    refused = [c["at"] - burst_at for c in calls if c["status"] == 429]
    others = [c["at"] - burst_at for c in recorded["calls"] if c["route"] == "list_sources"]

    figure, (rate, fresh) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    figure.suptitle(name, fontsize=10)
    # A window as long as the limit's own: per minute for refresh, per second otherwise.
    window = 60.0 if limit_per_s < 1 else 1.0
    per_window = Counter(int(t // window) for t in done)
    seconds = range(int(max(done) // window) + 1) if done else range(0)
    rate.step(
        [s * window for s in seconds],
        [per_window.get(s, 0) / window for s in seconds],
        where="post",
        label="the stack's calls",
    )
    if others:
        outside = Counter(int(t // window) for t in others)
        rate.step(
            [s * window for s in seconds],
            [outside.get(s, 0) / window for s in seconds],
            where="post",
            label="outside user",
        )
    rate.axhline(limit_per_s, color="red", linestyle="--", linewidth=1, label="published limit")
    if refused:
        rate.plot(refused, [limit_per_s] * len(refused), "rx", label="429")
    rate.set_ylim(0, limit_per_s * 1.3)
    rate.set_xlabel("s since the burst")
    rate.set_ylabel("calls / s")
    rate.legend(fontsize=7, loc="lower right")

    if done:
        fresh.plot(done, [(i + 1) / len(done) for i in range(len(done))], label="indexed")
    fresh.axvline(floor_s, color="red", linestyle="--", linewidth=1, label="floor (n / limit)")
    fresh.set_xlabel("s from the burst to imgix's answer")
    fresh.set_ylabel("share of events")
    fresh.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
