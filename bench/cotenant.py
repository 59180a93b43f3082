"""Another user of the same imgix account, outside the shared budget (figure 1):

    python -m bench.cotenant BASE_URL KEY CLASS PER_SECOND UNTIL_MONOTONIC [SOURCE_ID]

Calls at a steady rate until UNTIL (the machine's monotonic clock): `default` lists the
Sources, `refresh` refreshes an asset of its own (paths under cotenant/). It retries
nothing: every answer, 429 included, is recorded by the emulator.
"""

from __future__ import annotations

import sys
import time

import requests


def main(argv: list[str]) -> int:
    base, key, limit_class, per_second, until = argv[:5]
    source_id = argv[5] if len(argv) > 5 else ""
    interval, session = 1.0 / float(per_second), requests.Session()
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/vnd.api+json"}
    next_at, number = time.monotonic(), 0
    while next_at < float(until):
        if limit_class == "refresh":
            url = f"{base}/api/v1/sources/{source_id}/assets/refresh/cotenant/{number}.jpg"
            session.post(url, headers=headers, data=b"{}", timeout=10)
        else:
            session.get(f"{base}/api/v1/sources", headers=headers, timeout=10)
        number += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
