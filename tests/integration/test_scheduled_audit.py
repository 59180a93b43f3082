"""The scheduled audit (AuditSchedule): the real ASL on moto runs the real auditor handler,
with exactly the permissions template.yaml grants it, in slices that each stop at their
deadline; the counts it publishes are the classification `ops audit` prints."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from imgix_autoadder.audit import slices
from tests.harness.emf import emitted
from tests.harness.machines import state_machine
from tests.harness.world import Stack, load_function
from tests.integration.test_audit import drifted  # noqa: F401  (the fixture)
from tests.integration.test_dashboard import AUDIT, OURS, SERVICE


def test_the_scheduled_audit_publishes_what_ops_audit_finds_in_slices(
    drifted: Stack,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(slices, "KEYS_A_STEP", 2)
    invocations: list[dict[str, Any]] = []
    auditor = load_function("auditor")
    auditor.SLICE_S = 0.0  # each slice a single step: several slices, each resumed
    handler = auditor.lambda_handler

    def recorded(event: dict[str, Any], context: Any) -> Any:
        invocations.append(event)
        try:
            return handler(event, context)
        except Exception as exc:
            invocations.append({"action": "failed", "error": repr(exc)})
            raise

    monkeypatch.setattr(auditor, "lambda_handler", recorded)
    machine = state_machine(monkeypatch, "auditor", "audit.asl.json", "AuditorFunctionArn", auditor)
    sfn = boto3.client("stepfunctions")
    capsys.readouterr()

    execution = sfn.start_execution(
        stateMachineArn=machine, input=json.dumps({"source_ids": [drifted.source_id]})
    )["executionArn"]
    deadline = time.monotonic() + 120
    while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, invocations
        time.sleep(0.2)

    assert status == "SUCCEEDED"
    actions = [event["action"] for event in invocations]
    assert actions.count("forward") > 1 and actions.count("backward") >= 1  # in slices
    assert actions[-1] == "publish"
    assert invocations[-1]["counts"] == {
        "in sync": 2, "missing": 2, "stale": 1, "skipped": 1, "deleted at origin": 2
    }  # fmt: skip
    out = capsys.readouterr().out
    published = {n for ns, n, dims in emitted(out) if (ns, dims) == (OURS, SERVICE)}
    assert published >= AUDIT
    values = {  # EMF may hold a metric's values as a list
        name: sum(document[name]) if isinstance(document[name], list) else document[name]
        for line in out.splitlines()
        if line.startswith("{") and '"_aws"' in line
        for document in [json.loads(line)]
        for name in AUDIT
        if name in document and name.startswith("Assets")
    }
    assert values == {"AssetsMissing": 2, "AssetsStale": 1, "AssetsDeletedAtOrigin": 2}
