"""A stack-managed imgix Source: what the template intends, and how to get imgix there.

The custom resource (functions/source_manager) creates the Source for the origin bucket and
prefix with the credentials of an IAM user that can only read it (and write, for ingest),
PATCHes only what changed on a stack update, waits for the deploy, and disables the Source
when the stack is deleted (imgix has no delete) unless told to retain it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixNotFound
from imgix_autoadder.sources import spec
from imgix_autoadder.sources.intent import SourceIntent, patch_for

FAILED_CREATE_PREFIX = "imgix-source-not-created-"


class SourceManager:
    def __init__(
        self,
        client: ImgixClient,
        read_credentials: Callable[[str], dict[str, str]],
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._credentials = read_credentials
        self._poll_s = poll_s
        self._clock = clock
        self._sleep = sleep

    def create(self, intent: SourceIntent, deadline: float) -> tuple[str, str]:
        deployment = {**intent.deployment(), **self._keys(intent)}
        found = spec.problems(deployment, creating=True)
        if found:
            raise ValueError("invalid Source: " + "; ".join(found))
        if self._clock() >= deadline:
            # A create that could be cut off would leave a Source the stack does not know.
            raise TimeoutError("too little time left to create the Source; nothing was created")
        source = self._client.create_source({"name": intent.name, "deployment": deployment})
        source_id = str(source["id"])
        return source_id, self.wait(source_id, deadline)

    def update(
        self, source_id: str, intent: SourceIntent, old: SourceIntent | None, deadline: float
    ) -> str:
        """PATCH only what differs from what imgix holds, and the key pair when it was
        rotated or imgix holds another access key: any deployment change redeploys the
        Source. The Update is answered only once imgix has deployed (or the deadline
        passes), so CloudFormation deletes a rotated-out key after imgix stopped using it."""
        current = self._client.get_source(source_id)
        attributes = patch_for(intent, old, current, self._keys(intent))
        if not attributes:
            return str(current.get("attributes", {}).get("deployment_status", ""))
        self._client.update_source(source_id, attributes)
        return self.wait(source_id, deadline)

    def delete(self, source_id: str, intent: SourceIntent) -> str:
        """imgix has no delete: disable the Source, unless the stack retains it."""
        if source_id.startswith(FAILED_CREATE_PREFIX):
            return "never created"
        if intent.retain:
            return "retained"
        try:
            self._client.update_source(source_id, {"enabled": False})
        except ImgixNotFound:
            return "already gone"
        return "disabled"

    def wait(self, source_id: str, deadline: float) -> str:
        """Follow deployment_status until deployed, or until the deadline (then the caller
        answers with the status it reached: the Source exists and keeps deploying)."""
        while True:
            status = str(
                self._client.get_source(source_id).get("attributes", {}).get("deployment_status")
            )
            if status == "deployed" or self._clock() + self._poll_s > deadline:
                return status
            self._sleep(self._poll_s)

    def _keys(self, intent: SourceIntent) -> dict[str, str]:
        found = self._credentials(intent.credentials_secret)
        keys = {k: found.get(k, "") for k in ("s3_access_key", "s3_secret_key")}
        if not all(keys.values()):
            raise ValueError(  # names the fields, never their values
                f"secret {intent.credentials_secret} must hold s3_access_key and s3_secret_key"
            )
        return keys
