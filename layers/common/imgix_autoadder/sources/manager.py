"""A stack-managed imgix Source: what the template intends, and how to get imgix there.

The custom resource (functions/source_manager) creates the Source for the origin bucket and
prefix with the credentials of an IAM user that can only read it (and write, for ingest),
PATCHes only what changed on a stack update, waits for the deploy, and disables the Source
when the stack is deleted (imgix has no delete) unless told to retain it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import (
    OUTAGE_STATUSES,
    ImgixError,
    ImgixNotFound,
    ImgixTransportError,
    ImgixUnavailable,
)
from imgix_autoadder.sources import spec
from imgix_autoadder.sources.intent import SourceIntent, patch_for

FAILED_CREATE_PREFIX = "imgix-source-not-created-"

T = TypeVar("T")


class ImgixDownPastDeadline(Exception):
    """imgix stayed unavailable until the request's own deadline: CloudFormation is told
    so, with what was (not) done, rather than the client's last error alone."""


def outlasts_outage(error: ImgixError, sent_twice_is_safe: bool) -> bool:
    """Whether asking again later can help: imgix down (the breaker open, or 5xx after the
    client's retries); no answer at all only when the request may be sent twice."""
    if isinstance(error, ImgixUnavailable) or error.status in OUTAGE_STATUSES:
        return True
    return isinstance(error, ImgixTransportError) and sent_twice_is_safe


class SourceManager:
    def __init__(
        self,
        client: ImgixClient,
        read_credentials: Callable[[str], dict[str, str]],
        poll_s: float = 5.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._client = client
        self._credentials = read_credentials
        self._poll_s = poll_s
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep

    def create(self, intent: SourceIntent, deadline: float) -> tuple[str, str]:
        deployment = {**intent.deployment(), **self._keys(intent)}
        found = spec.problems(deployment, creating=True)
        if found:
            raise ValueError("invalid Source: " + "; ".join(found))
        if self._clock() >= deadline:
            # A create that could be cut off would leave a Source the stack does not know.
            raise TimeoutError("too little time left to create the Source; nothing was created")
        source = self._while_down(
            "create the Source",
            "nothing was created",
            lambda: self._client.create_source({"name": intent.name, "deployment": deployment}),
            deadline,
            sent_twice_is_safe=False,  # a second POST would make a second Source
        )
        source_id = str(source["id"])
        return source_id, self.wait(source_id, deadline)

    def update(
        self, source_id: str, intent: SourceIntent, old: SourceIntent | None, deadline: float
    ) -> str:
        """PATCH only what differs from what imgix holds, and the key pair when it was
        rotated or imgix holds another access key: any deployment change redeploys the
        Source. The Update is answered only once imgix has deployed (or the deadline
        passes), so CloudFormation deletes a rotated-out key after imgix stopped using it."""
        unchanged = "the Source was not changed"
        current = self._while_down(
            "read the Source", unchanged, lambda: self._client.get_source(source_id), deadline
        )
        attributes = patch_for(intent, old, current, self._keys(intent))
        if not attributes:
            return str(current.get("attributes", {}).get("deployment_status", ""))
        self._while_down(
            "update the Source",
            "the change may not have reached it",
            lambda: self._client.update_source(source_id, attributes),
            deadline,
        )
        return self.wait(source_id, deadline)

    def delete(self, source_id: str, intent: SourceIntent, deadline: float) -> str:
        """imgix has no delete: disable the Source, unless the stack retains it."""
        if source_id.startswith(FAILED_CREATE_PREFIX):
            return "never created"
        if intent.retain:
            return "retained"
        try:
            self._while_down(
                "disable the Source",
                "it is still enabled",
                lambda: self._client.update_source(source_id, {"enabled": False}),
                deadline,
            )
        except ImgixNotFound:
            return "already gone"
        return "disabled"

    def wait(self, source_id: str, deadline: float) -> str:
        """Follow deployment_status until deployed, or until the deadline (then the caller
        answers with the status it reached: the Source exists and keeps deploying)."""
        while True:
            try:
                source = self._client.get_source(source_id)
                status = str(source.get("attributes", {}).get("deployment_status"))
            except ImgixError as exc:  # the Source exists: an outage only hides its status
                if not outlasts_outage(exc, sent_twice_is_safe=True):
                    raise
                status = "unknown (imgix unavailable)"
            if status == "deployed" or self._clock() + self._poll_s > deadline:
                return status
            self._sleep(self._poll_s)

    def _while_down(
        self,
        what: str,
        outcome: str,
        call: Callable[[], T],
        deadline: float,
        sent_twice_is_safe: bool = True,
    ) -> T:
        """Ride out an imgix outage while the request's deadline allows, waiting as long as
        the stack's breaker asks; past it, a failure that says what happened."""
        started = self._clock()
        while True:
            try:
                return call()
            except ImgixError as exc:
                if not outlasts_outage(exc, sent_twice_is_safe):
                    raise
                wait_s = max(1.0, exc.retry_after_s or self._poll_s)
                if self._clock() + wait_s > deadline:
                    down_s = self._clock() - started
                    raise ImgixDownPastDeadline(
                        f"imgix was unavailable for {down_s:.0f} s, until this request's "
                        f"deadline, while trying to {what}: {outcome}. Retry the stack "
                        f"operation once imgix is back (status.imgix.com). Last: {exc}"
                    ) from None
                self._sleep(wait_s)

    def _keys(self, intent: SourceIntent) -> dict[str, str]:
        found = self._credentials(intent.credentials_secret)
        keys = {k: found.get(k, "") for k in ("s3_access_key", "s3_secret_key")}
        if not all(keys.values()):
            raise ValueError(  # names the fields, never their values
                f"secret {intent.credentials_secret} must hold s3_access_key and s3_secret_key"
            )
        return keys
