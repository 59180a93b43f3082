"""What the stack intends its managed imgix Source to be, how imgix's Source drifted from
it, and the PATCH that brings it back: no I/O (manager.py makes the calls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceIntent:
    name: str
    bucket: str
    prefix: str
    subdomains: tuple[str, ...]
    allows_upload: bool
    credentials_secret: str  # Secrets Manager: {"s3_access_key": ..., "s3_secret_key": ...}
    retain: bool
    reader_key_id: str = ""  # follows the stack's reader key: a new one means a rotation

    @classmethod
    def from_properties(cls, properties: dict[str, Any]) -> SourceIntent:
        """The custom resource's properties (all strings or lists, as CloudFormation sends)."""
        missing = [
            name
            for name in ("Name", "Bucket", "Subdomains", "CredentialsSecretArn")
            if not properties.get(name)
        ]
        if missing:
            raise ValueError(f"missing properties: {', '.join(missing)}")
        subdomains = properties["Subdomains"]
        if isinstance(subdomains, str):
            subdomains = [s.strip() for s in subdomains.split(",") if s.strip()]
        return cls(
            name=str(properties["Name"]),
            bucket=str(properties["Bucket"]),
            prefix=str(properties.get("Prefix") or "").strip("/"),
            subdomains=tuple(subdomains),
            allows_upload=str(properties.get("AllowsUpload", "false")).lower() == "true",
            credentials_secret=str(properties["CredentialsSecretArn"]),
            retain=str(properties.get("RetainOnDelete", "false")).lower() == "true",
            reader_key_id=str(properties.get("ReaderKeyId") or ""),
        )

    def rotates_keys(self, old: SourceIntent | None) -> bool:
        """The key pair must be sent again: a new secret, or a new key in the same one."""
        return (
            old is None
            or old.credentials_secret != self.credentials_secret
            or old.reader_key_id != self.reader_key_id
        )

    def deployment(self) -> dict[str, Any]:
        """What the deployment should hold, secrets aside."""
        return {
            "type": "s3",
            "s3_bucket": self.bucket,
            "s3_prefix": self.prefix or None,
            "imgix_subdomains": list(self.subdomains),
            "allows_upload": self.allows_upload,
        }

    def drift(self, source: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Each field where imgix differs from the intent: (imgix holds, the stack wants)."""
        attributes = source.get("attributes") or {}
        deployment = attributes.get("deployment") or {}
        found: dict[str, tuple[Any, Any]] = {}
        if attributes.get("name") != self.name:
            found["name"] = (attributes.get("name"), self.name)
        for field, intended in self.deployment().items():
            held, wanted = deployment.get(field), intended
            if field == "s3_prefix":
                held, wanted = (held or "").strip("/"), wanted or ""
            if field == "imgix_subdomains":
                held, wanted = sorted(held or []), sorted(wanted)
            if held != wanted:
                found[field] = (held, wanted)
        if attributes.get("enabled") is False:
            found["enabled"] = (False, True)
        return found


def patch_for(
    intent: SourceIntent,
    old: SourceIntent | None,
    current: dict[str, Any],
    keys: dict[str, str],
) -> dict[str, Any]:
    """The PATCH attributes that bring imgix's Source (`current`) to the intent: only what
    drifted, and the reader key pair when it was rotated or imgix holds another access
    key. Empty: nothing to send (and no redeploy)."""
    drift = intent.drift(current)
    attributes: dict[str, Any] = {}
    if "name" in drift:
        attributes["name"] = intent.name
    if "enabled" in drift:
        attributes["enabled"] = True
    wanted = intent.deployment()
    deployment = {k: wanted[k] for k in drift if k in wanted}
    held = (current.get("attributes", {}).get("deployment") or {}).get("s3_access_key")
    if intent.rotates_keys(old) or held != keys["s3_access_key"]:
        deployment.update(keys)
    if deployment:
        attributes["deployment"] = deployment
    return attributes
