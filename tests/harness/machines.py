"""The template's state machines on moto, their Lambda tasks run by our real handlers
in-process (moto's Step Functions executes them; see docs/development.md)."""

from __future__ import annotations

from types import ModuleType

import boto3
import pytest
from moto.awslambda_simple.models import LambdaSimpleBackend

from localdev.lambda_hook import make_invoke
from tests.harness.world import ROOT

ACCOUNT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


def state_machine(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    asl: str,
    substitution: str,
    function: ModuleType,
) -> str:
    """Create `statemachine/<asl>` as `name`, its `${substitution}` the function's ARN, and
    route that function's invokes to `function`; returns the state machine's ARN."""
    function_name = f"imgix-autoadder-{name}"
    monkeypatch.setattr(LambdaSimpleBackend, "invoke", make_invoke({function_name: function}))
    definition = (ROOT / "statemachine" / asl).read_text()
    arn: str = boto3.client("stepfunctions").create_state_machine(
        name=f"imgix-autoadder-{name}",
        definition=definition.replace("${" + substitution + "}", ACCOUNT_ARN + function_name),
        roleArn=f"arn:aws:iam::123456789012:role/{name}",
    )["stateMachineArn"]
    return arn
