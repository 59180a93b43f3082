"""The emulator in a process of its own, so that a benchmark's own work never skews the
arrival times it measures:

    python -m localdev.imgix_emulator --api-key K --source BUCKET[/PREFIX] [--published]
        [--window sliding|fixed] [--jitter-ms 150] [--handshake-ms 300]

Prints one JSON line ({"base_url", "source_id"}), serves until its standard input closes,
then prints every call it received as one JSON line (route, path, status, arrival time on
the machine's monotonic clock, which every process here shares) and exits.
"""

from __future__ import annotations

import argparse
import json
import sys

from localdev.imgix_emulator.limits import PUBLISHED_LIMITS
from localdev.imgix_emulator.network import Network
from localdev.imgix_emulator.server import ImgixEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--source", required=True, help="BUCKET or BUCKET/PREFIX")
    parser.add_argument("--published", action="store_true", help="enforce the published limits")
    parser.add_argument("--window", choices=("sliding", "fixed"), default="sliding")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--handshake-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    emulator = ImgixEmulator(
        api_key=args.api_key, rate_limits=dict(PUBLISHED_LIMITS) if args.published else None
    )
    emulator.limits.window = args.window
    emulator.purge_api.repeat_answer = "200"
    if args.jitter_ms or args.handshake_ms:
        emulator.network = Network(args.jitter_ms / 1000, args.handshake_ms / 1000)
    bucket, _, prefix = args.source.partition("/")
    with emulator:
        source_id = emulator.create_source("bench", bucket, prefix=prefix, subdomains=["bench"])
        print(json.dumps({"base_url": emulator.base_url, "source_id": source_id}), flush=True)
        sys.stdin.read()  # until the parent closes it
        calls = [
            {"route": c.route, "path": c.origin_path, "status": c.status, "at": c.at}
            for c in emulator.calls
        ]
    print(json.dumps(calls), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
