"""One handler's cold start: `cold_start.py LAYER APP_PATH [EVENT_JSON]`.

Imports the handler as Lambda does (by path, the layer on sys.path) and, given an event,
makes its first invocation, which builds what the import deferred. Prints the seconds of
each as JSON. Nothing is imported before the clock starts but what the interpreter needs.
"""

import json
import sys
import time

started = time.perf_counter()

import importlib.util  # noqa: E402 (after the clock starts, as the handler's own imports)


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "bench", 512, "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def main(argv: list[str]) -> dict[str, float | None]:
    layer, path, *event = argv
    sys.path[:0] = [layer]
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = time.perf_counter()
    first = None
    if event:
        module.lambda_handler(json.loads(event[0]), Context())
        first = time.perf_counter() - imported
    return {"import_init": imported - started, "first_invocation": first}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
