"""`ops audit --fix`: the missing and stale keys go through the backfill state machine, as
named objects, so the indexer handles them like any other (state, locks, rate budget)."""

from __future__ import annotations

import json
import time
from typing import Any

from imgix_autoadder.audit.classify import AuditReport, OriginObject, Verdict
from imgix_autoadder.sources.source_map import Source

# Step Functions takes at most 256 KB of input: a few hundred bytes an object.
OBJECTS_PER_EXECUTION = 500


def fix_items(report: AuditReport, objects: list[OriginObject]) -> list[dict[str, Any]]:
    """The backfill's item for each key to fix, shaped as s3:listObjectsV2 lists it, with
    the audit's verdict: imgix lacks it (missing) or holds an older copy (stale)."""
    by_key = {obj.key: obj for obj in objects}
    items = []
    for finding in report.needs_fixing:
        obj = by_key[finding.key]
        items.append(
            {
                "Key": obj.key,
                "ETag": f'"{obj.etag}"',
                "Size": obj.size,
                "LastModified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(obj.last_modified)),
                "Audit": "missing" if finding.verdict is Verdict.MISSING else "stale",
            }
        )
    return items


def send_fixes(
    sfn: Any,
    state_machine_arn: str | None,
    source: Source,
    report: AuditReport,
    objects: list[OriginObject],
) -> list[str]:
    if not state_machine_arn:
        raise SystemExit("--fix needs --backfill-arn (the stack's BackfillStateMachineArn output)")
    items = fix_items(report, objects)
    started = []
    for first in range(0, len(items), OBJECTS_PER_EXECUTION):
        chunk = items[first : first + OBJECTS_PER_EXECUTION]
        name = f"audit-fix-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6}"
        document = {"bucket": source.bucket, "objects": chunk, "tolerated_failure_percentage": 100}
        started.append(
            sfn.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(document)
            )["executionArn"]
        )
    return started
