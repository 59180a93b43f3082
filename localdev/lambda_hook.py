"""Run Lambda tasks of a moto-executed state machine in this process, on the real handlers.

moto executes Step Functions definitions, but with `use_docker: False` its Lambda backend
only echoes. This routes each invoke to the handler module registered for the function's
name, and reports an exception as Lambda does (a function error whose errorType is the
exception's class name), so the machine's Retry and Catch see real error names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend


class _Context:
    function_name = "in-process"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:in-process"
    aws_request_id = "in-process"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


def make_invoke(functions: dict[str, ModuleType]) -> Callable[..., bytes]:
    def invoke(
        self: Any,
        function_name: str,
        qualifier: Any,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        module = functions[function_name.rsplit(":", 1)[-1]]
        try:
            result = module.lambda_handler(json.loads(body), _Context())
            return json.dumps(result).encode()
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return json.dumps(error).encode()

    return invoke


def install(functions: dict[str, ModuleType]) -> Callable[[], None]:
    """Route invokes to `functions` (by function name); returns the undo."""
    original = LambdaSimpleBackend.invoke
    LambdaSimpleBackend.invoke = make_invoke(functions)  # type: ignore[method-assign]

    def undo() -> None:
        LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]

    return undo
