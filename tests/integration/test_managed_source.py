"""Custom::ImgixSource, the stack-managed Source: real CloudFormation request shapes
(events/cfn-managed-source-*.json) through the real handler, running with exactly the
permissions template.yaml grants SourceManagerFunction, against moto and the emulator.
Every request is answered by a PUT to its ResponseURL, here a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from imgix_autoadder import wiring
from imgix_autoadder.rate.breaker import OUTAGE_THRESHOLD
from imgix_autoadder.sources import manager as source_manager
from imgix_autoadder.sources.manager import FAILED_CREATE_PREFIX
from localdev.provision import READER_SECRET
from tests.harness.sim_time import SimulatedTime
from tests.harness.world import ROOT, FakeContext, Stack, load_function

READER_KEY = {"s3_access_key": "AKIAREADER", "s3_secret_key": "reader-secret-do-not-print"}


class Responses:
    """What CloudFormation's presigned response URL received."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.content_types.append(self.headers.get("Content-Type"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.server.server_address[1]}/cfn-response?X-Amz-Signature=x"
        )

    def last(self) -> dict[str, Any]:
        assert self.bodies, "CloudFormation was never answered"
        return self.bodies[-1]


@pytest.fixture
def responses() -> Iterator[Responses]:
    found = Responses()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()


@pytest.fixture
def manager(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    arn = boto3.client("secretsmanager").create_secret(
        Name=READER_SECRET, SecretString=json.dumps(READER_KEY)
    )["ARN"]
    monkeypatch.setenv("IMGIX_SOURCE_IDS", "0" * 24)  # as the template sets it
    identity = stack.identities["SourceManagerFunction"]
    monkeypatch.setattr(wiring, "aws_session", lambda function: identity)
    module = load_function("source_manager")
    module.secret_arn = arn
    return module


def request(kind: str, responses: Responses, manager: Any, **changes: Any) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / f"cfn-managed-source-{kind}.json").read_text())
    event["ResponseURL"] = responses.url
    for properties in ("ResourceProperties", "OldResourceProperties"):
        if properties in event:
            event[properties]["CredentialsSecretArn"] = manager.secret_arn
    event["ResourceProperties"].update(changes.pop("properties", {}))
    event.update(changes)
    return dict(event)


class Context(FakeContext):
    def __init__(self, remaining_s: float = 300) -> None:
        self.remaining_ms = int(remaining_s * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def create(stack: Stack, responses: Responses, manager: Any, **properties: Any) -> str:
    manager.lambda_handler(request("create", responses, manager, properties=properties), Context())
    answer = responses.last()
    assert answer["Status"] == "SUCCESS", answer
    return str(answer["PhysicalResourceId"])


def test_create_makes_the_source_with_the_reader_key_and_answers_success(
    stack: Stack, responses: Responses, manager: Any, capsys: pytest.CaptureFixture[str]
):
    source_id = create(stack, responses, manager)
    answer = responses.last()
    assert answer["Data"] == {"SourceId": source_id, "DeploymentStatus": "deployed"}
    assert answer["LogicalResourceId"] == "ManagedSource" and answer["RequestId"]
    assert responses.content_types == [""]  # the presigned URL is signed without one
    deployment = stack.emulator.sources[source_id]["attributes"]["deployment"]
    assert deployment["s3_bucket"] == "imgix-autoadder-origin-example"
    assert deployment["s3_prefix"] == "images"
    assert deployment["imgix_subdomains"] == ["autoadder-managed"]
    assert (deployment["s3_access_key"], deployment["s3_secret_key"]) == tuple(READER_KEY.values())
    printed = capsys.readouterr()
    assert READER_KEY["s3_secret_key"] not in printed.out + printed.err + json.dumps(answer)


def test_update_patches_only_what_changed(stack: Stack, responses: Responses, manager: Any):
    source_id = create(stack, responses, manager)
    stack.emulator.reset_calls()
    event = request("update", responses, manager, PhysicalResourceId=source_id)
    manager.lambda_handler(event, Context())

    assert responses.last()["Status"] == "SUCCESS"
    assert [c.route for c in stack.emulator.calls if c.route != "get_source"] == ["patch_source"]
    deployment = stack.emulator.sources[source_id]["attributes"]["deployment"]
    assert deployment["s3_prefix"] == "photos" and deployment["s3_access_key"] == "AKIAREADER"

    stack.emulator.reset_calls()  # the same properties again: nothing to change
    event["OldResourceProperties"] = event["ResourceProperties"]
    manager.lambda_handler(event, Context())
    assert responses.last()["Status"] == "SUCCESS"
    assert stack.emulator.calls_to("patch_source") == []


@pytest.mark.parametrize(("retain", "enabled"), [("false", False), ("true", True)])
def test_delete_disables_the_source_unless_retained(
    stack: Stack, responses: Responses, manager: Any, retain: str, enabled: bool
):
    source_id = create(stack, responses, manager)
    event = request(
        "delete", responses, manager, PhysicalResourceId=source_id,
        properties={"RetainOnDelete": retain},
    )  # fmt: skip
    manager.lambda_handler(event, Context())
    assert responses.last()["Status"] == "SUCCESS"
    assert stack.emulator.sources[source_id]["attributes"]["enabled"] is enabled


def test_a_failed_create_is_answered_failed_with_the_reason_and_deletes_cleanly(
    stack: Stack, responses: Responses, manager: Any
):
    event = request("create", responses, manager, properties={"Subdomains": "Not_A.Subdomain"})
    manager.lambda_handler(event, Context())
    answer = responses.last()
    assert answer["Status"] == "FAILED"
    assert "imgix_subdomains" in answer["Reason"]
    assert answer["PhysicalResourceId"].startswith(FAILED_CREATE_PREFIX)
    assert stack.emulator.calls_to("create_source") == []  # refused before any request

    # CloudFormation then deletes what it never got: answered, and imgix is not called.
    delete = request("delete", responses, manager, PhysicalResourceId=answer["PhysicalResourceId"])
    manager.lambda_handler(delete, Context())
    assert responses.last()["Status"] == "SUCCESS"
    assert stack.emulator.calls_to("patch_source") == []


def test_imgix_refusing_the_create_is_a_readable_failure(
    stack: Stack, responses: Responses, manager: Any
):
    stack.emulator.create_source("taken", "b", subdomains=["autoadder-managed"])
    manager.lambda_handler(request("create", responses, manager), Context())
    answer = responses.last()
    assert answer["Status"] == "FAILED" and "already used" in answer["Reason"]


def test_a_create_without_time_to_finish_creates_nothing(
    stack: Stack, responses: Responses, manager: Any
):
    manager.lambda_handler(request("create", responses, manager), Context(remaining_s=15))
    answer = responses.last()
    assert answer["Status"] == "FAILED" and "nothing was created" in answer["Reason"]
    assert stack.emulator.calls_to("create_source") == []


def test_a_request_is_answered_before_the_function_times_out(
    stack: Stack, responses: Responses, manager: Any, monkeypatch: pytest.MonkeyPatch
):
    # A 2 s margin: the work may start until 12 - 2 * 2 = 8 s (ample on a loaded machine)
    # and the guard answers at 12 - 2 = 10 s.
    monkeypatch.setattr(manager, "ANSWER_MARGIN_S", 2.0)

    def hang_past_the_guard(call: Any) -> None:
        if call.route == "create_source":
            waited = time.monotonic() + 30
            while not responses.bodies and time.monotonic() < waited:
                time.sleep(0.05)

    stack.emulator.on_request = hang_past_the_guard
    manager.lambda_handler(request("create", responses, manager), Context(remaining_s=12))
    assert stack.emulator.calls_to("create_source") != []  # the create was sent, then hung
    assert len(responses.bodies) == 1  # answered once, by the guard, not twice
    assert responses.bodies[0]["Status"] == "FAILED"
    assert "timed out" in responses.bodies[0]["Reason"]


def test_a_rotated_reader_key_reaches_imgix_before_the_update_is_answered(
    stack: Stack, responses: Responses, manager: Any, capsys: pytest.CaptureFixture[str]
):
    """ImgixReaderKeySerial raised: CloudFormation made a new key, wrote it into the same
    secret, and sends an Update whose ReaderKeyId changed (nothing else did)."""
    source_id = create(stack, responses, manager)
    rotated = {"s3_access_key": "AKIAROTATED", "s3_secret_key": "rotated-secret-do-not-print"}
    boto3.client("secretsmanager").put_secret_value(
        SecretId=manager.secret_arn, SecretString=json.dumps(rotated)
    )
    stack.emulator.reset_calls()
    event = request("update", responses, manager, PhysicalResourceId=source_id)
    event["ResourceProperties"] = {**event["OldResourceProperties"], "ReaderKeyId": "AKIAROTATED"}

    manager.lambda_handler(event, Context())

    answer = responses.last()
    assert answer["Status"] == "SUCCESS"
    # Answered after the deploy: only then may CloudFormation delete the old key.
    assert answer["Data"]["DeploymentStatus"] == "deployed"
    [patch] = stack.emulator.calls_to("patch_source")
    assert stack.emulator.calls.index(patch) < len(stack.emulator.calls) - 1  # a read followed
    deployment = stack.emulator.sources[source_id]["attributes"]["deployment"]
    assert (deployment["s3_access_key"], deployment["s3_secret_key"]) == tuple(rotated.values())
    # What imgix shows now is the new access key.
    shown = stack.emulator.calls[-1]
    assert shown.route == "get_source"
    printed = capsys.readouterr()
    assert rotated["s3_secret_key"] not in printed.out + printed.err + json.dumps(answer)


def test_imgix_holding_another_access_key_is_given_the_stacks_pair(
    stack: Stack, responses: Responses, manager: Any
):
    """Someone changed the Source's key in the dashboard: the next Update puts it back."""
    source_id = create(stack, responses, manager)
    stack.emulator.sources[source_id]["attributes"]["deployment"]["s3_access_key"] = "AKIAOTHER"
    event = request("update", responses, manager, PhysicalResourceId=source_id)
    event["ResourceProperties"] = dict(event["OldResourceProperties"])

    manager.lambda_handler(event, Context())

    assert responses.last()["Status"] == "SUCCESS"
    deployment = stack.emulator.sources[source_id]["attributes"]["deployment"]
    assert deployment["s3_access_key"] == READER_KEY["s3_access_key"]


def simulate_time_in_the_manager(monkeypatch: pytest.MonkeyPatch) -> SimulatedTime:
    """The manager's waits (and the breaker's clock) pass in simulated time."""
    sim = SimulatedTime(monkeypatch)
    clock = types.SimpleNamespace(monotonic=sim.monotonic, sleep=sim.sleep)
    monkeypatch.setattr(source_manager, "time", clock)
    return sim


def test_imgix_down_past_the_deadline_is_a_clear_failure_with_nothing_created(
    stack: Stack, responses: Responses, manager: Any, monkeypatch: pytest.MonkeyPatch
):
    sim = simulate_time_in_the_manager(monkeypatch)
    stack.emulator.faults.randomly(1.0, ("503",))
    before = set(stack.emulator.sources)

    manager.lambda_handler(request("create", responses, manager), Context(remaining_s=300))

    answer = responses.last()
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("ImgixDownPastDeadline: imgix was unavailable for ")
    assert "create the Source: nothing was created" in answer["Reason"]
    assert answer["PhysicalResourceId"].startswith(FAILED_CREATE_PREFIX)
    assert 150 < sim.offset_s < 300  # it waited out the breaker's openings, to the deadline
    # The client's retries, then the breaker: one probe per opening, never a create.
    creates = stack.emulator.calls_to("create_source")
    assert len(creates) == OUTAGE_THRESHOLD
    assert stack.emulator.calls_to("list_sources")  # the probes
    assert set(stack.emulator.sources) == before


def test_an_outage_shorter_than_the_deadline_is_ridden_out_with_one_source(
    stack: Stack, responses: Responses, manager: Any, monkeypatch: pytest.MonkeyPatch
):
    sim = simulate_time_in_the_manager(monkeypatch)
    stack.emulator.faults.randomly(1.0, ("503",))

    def imgix_back_after_two_minutes(call: Any) -> None:
        if sim.offset_s > 120:
            stack.emulator.faults.clear()

    stack.emulator.on_request = imgix_back_after_two_minutes
    before = set(stack.emulator.sources)
    source_id = create(stack, responses, manager)

    assert sim.offset_s > 120  # waited for imgix, within the deadline
    assert set(stack.emulator.sources) - before == {source_id}
    assert len([c for c in stack.emulator.calls_to("create_source") if c.status == 201]) == 1
