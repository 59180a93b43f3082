"""CloudFormation custom resource Custom::ImgixSource: a stack-managed imgix Source.

Create makes the Source, Update PATCHes only what changed, Delete disables it (or keeps
it with RetainOnDelete). Every request is answered, with a readable reason on failure,
and before the function's own timeout, so that a stack never hangs.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from imgix_autoadder.core.config import load_settings
from imgix_autoadder.core.observability import make_logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = make_logger()
settings = load_settings(function="source_manager")
ANSWER_MARGIN_S = 10.0  # time kept to answer CloudFormation after the work stops


class Responder:
    """The custom resource response protocol: one PUT of a JSON document to ResponseURL."""

    def __init__(self, event: dict[str, Any]) -> None:
        self._event = event
        self._lock = threading.Lock()
        self.sent: str | None = None

    def send(
        self, status: str, physical_id: str, reason: str = "", data: dict[str, Any] | None = None
    ) -> None:
        import requests

        with self._lock:
            if self.sent is not None:
                return
            self.sent = status
        body = {
            "Status": status,
            "Reason": reason[:3000] or status,
            "PhysicalResourceId": physical_id,
            "StackId": self._event["StackId"],
            "RequestId": self._event["RequestId"],
            "LogicalResourceId": self._event["LogicalResourceId"],
            "NoEcho": False,
            "Data": data or {},
        }
        # The presigned S3 URL is signed with no Content-Type: send none.
        requests.put(
            self._event["ResponseURL"],
            data=json.dumps(body).encode(),
            headers={"Content-Type": ""},
            timeout=10,
        )


def physical_id_of(event: dict[str, Any]) -> str:
    from imgix_autoadder.sources.manager import FAILED_CREATE_PREFIX

    return str(event.get("PhysicalResourceId") or FAILED_CREATE_PREFIX + event["RequestId"])


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    responder = Responder(event)
    remaining_s = context.get_remaining_time_in_millis() / 1000.0
    deadline = time.monotonic() + remaining_s - 2 * ANSWER_MARGIN_S
    # Whatever happens below, CloudFormation hears back before the function times out.
    guard = threading.Timer(
        max(0.0, remaining_s - ANSWER_MARGIN_S),
        responder.send,
        (
            "FAILED",
            physical_id_of(event),
            "timed out before imgix answered; on a Create the Source may exist all the same: "
            "python -m ops sources list shows it",
        ),
    )
    guard.daemon = True
    guard.start()
    try:
        physical_id, data, reason = handle(event, deadline)
        responder.send("SUCCESS", physical_id, reason, data)
    except Exception as exc:  # every failure is answered, with a reason a person can act on
        logger.exception("custom resource failed", extra={"request": event.get("RequestType")})
        responder.send("FAILED", physical_id_of(event), f"{type(exc).__name__}: {exc}")
    finally:
        guard.cancel()


def handle(event: dict[str, Any], deadline: float) -> tuple[str, dict[str, Any], str]:
    from imgix_autoadder.sources.intent import SourceIntent
    from imgix_autoadder.sources.manager import SourceManager
    from imgix_autoadder.wiring import aws_client, function_client

    session, client = function_client(settings, "SourceManagerFunction")
    secrets = aws_client(session, "secretsmanager")

    def read_credentials(secret_id: str) -> dict[str, str]:
        found = json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    manager = SourceManager(client, read_credentials)
    kind = event["RequestType"]
    intent = SourceIntent.from_properties(event.get("ResourceProperties") or {})
    if kind == "Create":
        source_id, status = manager.create(intent, deadline)
        return source_id, {"SourceId": source_id, "DeploymentStatus": status}, f"Source {status}"
    source_id = physical_id_of(event)
    if kind == "Update":
        old_properties = event.get("OldResourceProperties") or {}
        old = SourceIntent.from_properties(old_properties) if old_properties else None
        status = manager.update(source_id, intent, old, deadline)
        return source_id, {"SourceId": source_id, "DeploymentStatus": status}, f"Source {status}"
    outcome = manager.delete(source_id, intent, deadline)
    return source_id, {"SourceId": source_id}, f"Source {outcome}"
