"""CloudWatch embedded metric format, as Powertools prints it: which metrics a run emitted."""

from __future__ import annotations

import json

# (namespace, metric name, its dimensions as sorted (name, value) pairs)
Emitted = tuple[str, str, tuple[tuple[str, str], ...]]


def emitted(output: str) -> set[Emitted]:
    found: set[Emitted] = set()
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple(sorted((d, str(document[d])) for d in dimension_set))
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], dimensions))
    return found
