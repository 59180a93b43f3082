"""What a Source deployment must hold, per imgix's Sources reference
(https://docs.imgix.com/apis/management/sources): checked before any request."""

from __future__ import annotations

import re
from typing import Any

TYPES = ("azure", "gcs", "s3", "webfolder", "webproxy", "s3_compatible")
# "*Required for Source creation", per type.
REQUIRED: dict[str, tuple[str, ...]] = {
    "s3": ("s3_access_key", "s3_bucket", "s3_secret_key"),
    "gcs": ("gcs_access_key", "gcs_bucket", "gcs_secret_key"),
    "azure": ("azure_account", "azure_bucket", "azure_sas_string", "azure_service_type"),
    "webfolder": ("webfolder_base_url",),
    "webproxy": (),
    "s3_compatible": (
        "access_key_id",
        "bucket_name",
        "endpoint_url",
        "region",
        "secret_key",
        "storage_provider",
    ),
}
ENUMS: dict[str, tuple[str, ...]] = {
    "cache_ttl_behavior": ("respect_origin", "override_origin", "enforce_minimum"),
    "azure_service_type": ("blob", "file"),
    "storage_provider": ("DigitalOcean", "Linode", "Wasabi"),
    "robots.txt": ("origin", "allow-all", "disallow-all"),
}
RANGES: dict[str, tuple[int, int]] = {
    "cache_ttl_value": (1800, 31536000),
    "cache_ttl_error": (1, 31536000),
}
# Fields that are secrets: taken from a file or Secrets Manager, never argv, never printed.
SECRET_FIELDS = frozenset(
    {
        "s3_secret_key",
        "gcs_secret_key",
        "azure_sas_string",
        "secret_key",
        "password",
        "request_handshake",
        "request_signing_key",
    }
)
SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def is_secret(field: str) -> bool:
    return field in SECRET_FIELDS or field.startswith("request_")


def problems(deployment: dict[str, Any], creating: bool) -> list[str]:
    """Every documented rule the deployment breaks. On an update only the fields given are
    checked, plus the new type's required fields when the type changes."""
    found = []
    kind = deployment.get("type")
    if creating or "type" in deployment:
        if kind not in TYPES:
            found.append(f"type {kind!r} is not a Source type ({', '.join(TYPES)})")
        for name in REQUIRED.get(str(kind), ()):
            if not deployment.get(name):
                found.append(f"{name} is required for {kind} Sources")
    if creating or "imgix_subdomains" in deployment:
        subdomains = deployment.get("imgix_subdomains")
        if not isinstance(subdomains, list) or not subdomains:
            found.append("imgix_subdomains needs at least one subdomain")
        elif not all(isinstance(s, str) and SUBDOMAIN.match(s) for s in subdomains):
            found.append("imgix_subdomains takes the subdomain only: 'foo' for foo.imgix.net")
    for name, (low, high) in RANGES.items():
        if name in deployment:
            value = deployment[name]
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or not low <= value <= high:
                found.append(f"{name} must be a whole number from {low} to {high}")
    for name, allowed in ENUMS.items():
        if name in deployment and deployment[name] is not None:
            values = (
                ("allow-all", "disallow-all")
                if (name, kind) == ("robots.txt", "webproxy")
                else allowed
            )
            if deployment[name] not in values:
                found.append(f"{name} must be one of {', '.join(values)}")
    return found
