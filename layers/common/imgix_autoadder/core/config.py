"""The one place configuration is read: environment variables, validated at cold start
against their declaration (settings.py).

Every problem is reported at once, so a misconfigured deploy fails its first invocation
with a message that names each bad variable instead of failing later, record by record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import Field
from typing import Any

from imgix_autoadder.core.limits import (
    DIRECT_UPLOAD_LIMIT_BYTES,
    LOOPBACK_HOSTS,
    PACING_HEADROOM,
    SOURCE_ID_PATTERN,
)
from imgix_autoadder.core.settings import Settings, cast_default, declared, needed_by


class ConfigError(ValueError):
    """Raised at cold start when the environment cannot run the function."""


def is_loopback(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url).split("/")[0]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return host in LOOPBACK_HOSTS


# imgix documents no limits on custom field names or counts; modelled conservatively (and
# said so in docs/settings.md): lower-case names, as S3 keeps user-metadata keys, 64 long.
FIELD_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_CUSTOM_FIELDS = 20


def custom_field_problems(
    keys: tuple[str, ...], prefix: str, tag_keys: tuple[str, ...] = ()
) -> list[str]:
    """Why METADATA_FIELDS, TAG_FIELDS and CUSTOM_FIELD_PREFIX cannot be used ([] when they
    can). `tag_keys` come lower-cased: tag keys name their fields so, as S3 names
    user-metadata keys (which must be given lower-case: S3 keeps no other)."""
    problems = [
        f"{setting} entry {key!r}, after the prefix {prefix!r}, is no custom field name "
        f"({FIELD_NAME.pattern})"
        for setting, names in (("METADATA_FIELDS", keys), ("TAG_FIELDS", tag_keys))
        for key in names
        if not FIELD_NAME.match(prefix + key)
    ]
    count = len(keys) + len(tag_keys)
    if count > MAX_CUSTOM_FIELDS:
        problems.append(
            f"METADATA_FIELDS and TAG_FIELDS name {count} fields; at most {MAX_CUSTOM_FIELDS}"
        )
    names = [*keys, *tag_keys]
    if len(set(names)) != len(names):
        problems.append("METADATA_FIELDS and TAG_FIELDS name a field twice")
    return problems


def _read(env: Mapping[str, str], spec: Field[Any], problems: list[str]) -> Any:
    """One setting's value, cast to its default's type and checked against its bounds."""
    name, default = spec.metadata["env"], cast_default(spec)
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(default, bool):
        return raw.lower() == "true"
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(default, str):
        value = raw.strip()
        choices = spec.metadata["choices"]
        if choices and value not in choices:
            problems.append(f"{name}={raw!r} must be one of {choices}")
        return value
    cast: type[int] | type[float] = int if isinstance(default, int) else float
    try:
        number = cast(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a {cast.__name__}")
        return default
    low = spec.metadata["low"]
    if low is not None and number < low:
        problems.append(f"{name}={raw!r} must be >= {cast(low)}")
    return number


def load_settings(env: Mapping[str, str] | None = None, function: str = "") -> Settings:
    """Read and validate the environment; raise ConfigError naming every problem.

    `function`: the function being started, whose needed settings must be set.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    values = {spec.name: _read(env, spec, problems) for spec in declared()}
    problems[:0] = [
        f"{name} is required by this function"
        for name in needed_by(function)
        if name not in ("IMGIX_API_KEY_SECRET", "IMGIX_SOURCE_IDS")
        and not env.get(name, "").strip()
    ]

    if not values["api_key_secret"]:
        problems.append("IMGIX_API_KEY_SECRET (Secrets Manager name or ARN) is required")
    source_ids = values["source_ids"]
    if not source_ids:
        problems.append("IMGIX_SOURCE_IDS (comma-separated imgix Source ids) is required")
    problems.extend(
        f"IMGIX_SOURCE_IDS entry {sid!r} is not a 24-character hex Source id"
        for sid in source_ids
        if not SOURCE_ID_PATTERN.match(sid)
    )

    base_url = values["api_base_url"] = values["api_base_url"].rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", base_url):
        problems.append(f"IMGIX_API_BASE_URL={base_url!r} must be scheme://host[:port]")
    elif not base_url.startswith("https://") and not is_loopback(base_url):
        # The API key travels in every request: only the local emulator may use plain http.
        problems.append(f"IMGIX_API_BASE_URL={base_url!r} must use https (http only on loopback)")

    try:
        re.compile(values["upload_url_host_pattern"])
    except re.error as exc:
        problems.append(f"UPLOAD_URL_HOST_PATTERN is not a regular expression: {exc}")

    # Each of N concurrent execution environments paces itself to 1/N of each published
    # limit (N = the SQS event source's MaximumConcurrency), so together they stay under it.
    # IMGIX_PACING_EXTRA_SHARES: shares kept for other users of the same limits (the backfill).
    # With the shared budget every caller may use the whole limit: the schedule divides it.
    if not values["rate_budget_table"]:
        share = (values["pacing_divisor"] + values["pacing_extra_shares"]) / PACING_HEADROOM
        for spec in declared():
            if spec.metadata["per_environment"] and not env.get(spec.metadata["env"]):
                values[spec.name] = cast_default(spec) / share
    values["ingest_source_id"] = values["ingest_source_id"] or (source_ids[0] if source_ids else "")
    if values["direct_upload_limit_bytes"] > DIRECT_UPLOAD_LIMIT_BYTES:
        problems.append(
            f"DIRECT_UPLOAD_LIMIT_BYTES may not exceed imgix's {DIRECT_UPLOAD_LIMIT_BYTES} bytes"
        )
    values["tag_fields"] = tuple(key.lower() for key in values["tag_fields"])
    problems.extend(
        custom_field_problems(
            values["metadata_fields"], values["custom_field_prefix"], values["tag_fields"]
        )
    )
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return Settings(**values)
