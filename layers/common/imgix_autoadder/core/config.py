"""The one place configuration is declared and read: environment variables, validated at
cold start.

Each setting is declared once, as a field of Settings: its variable, type, default, lower
bound, allowed values and the functions that cannot run without it. load_settings, the
client's defaults and docs/settings.md (tests/infra/test_settings.py) all read that table.
Every problem is reported at once, so a misconfigured deploy fails its first invocation
with a message that names each bad variable instead of failing later, record by record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any

# imgix limits published for the Management API (requests per second unless noted).
PUBLISHED_DEFAULT_PER_SECOND = 4.0
PUBLISHED_REFRESH_PER_MINUTE = 10.0
PUBLISHED_UPLOAD_PER_SECOND = 2.0
PUBLISHED_PURGE_PER_SECOND = 10.0
PUBLISHED_GET_ASSET_PER_SECOND = 10.0

# Pace at 90% of a limit: requests sent exactly 1/rate apart still arrive jittered, and
# two that land in one server window earn a 429.
PACING_HEADROOM = 0.9

# Work that cannot finish before this much of an invocation's time is left is handed back
# to the queue: what follows the last imgix call (state write, DLQ and deferral sends) fits.
HANDLER_RESERVE_S = 10.0
# Longest a handler sleeps for a pacing slot; a later slot defers the record instead.
MAX_PACING_WAIT_S = 10.0
SQS_MAX_DELAY_S = 900  # SendMessage DelaySeconds maximum

# Presigned upload URLs must point at Amazon S3: virtual-hosted or path style, regional,
# dual-stack or accelerated endpoints. Anything else (EC2, ELB, API Gateway) is refused.
S3_HOST_PATTERN = (
    r"^(?:[a-z0-9][a-z0-9.-]*\.)?s3(?:[.-](?:dualstack|accelerate|[a-z]{2}(?:-gov)?-[a-z]+-\d))*"
    r"\.amazonaws\.com(?:\.cn)?$"
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

# "Under 30MB" (Asset Manager, Uploading): read as 30,000,000 bytes, the conservative
# reading of an unqualified MB.
DIRECT_UPLOAD_LIMIT_BYTES = 30_000_000
UPLOAD_SESSION_MAX_BYTES = 5 * 1024**3
SOURCE_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")
INGEST_DISPOSITIONS = ("delete", "tag", "keep")


BACKOFF_MAX_S = 30.0


class ConfigError(ValueError):
    """Raised at cold start when the environment cannot run the function."""


EVERY_FUNCTION = ("indexer", "upload_router", "uploader", "backfill", "source_manager")


def setting(
    env: str,
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    choices: tuple[str, ...] = (),
    needed_by: tuple[str, ...] = (),
    per_environment: bool = False,
) -> Any:
    """A Settings field read from `env`. `needed_by`: the functions that refuse to start
    without it. `per_environment`: a published limit that, without the shared budget, each
    execution environment divides by its share (see load_settings)."""
    return field(
        default=default,
        metadata={
            "env": env,
            "doc": doc,
            "low": low,
            "choices": choices,
            "needed_by": needed_by,
            "per_environment": per_environment,
        },
    )


@dataclass(frozen=True)
class Settings:
    api_key_secret: str = setting(
        "IMGIX_API_KEY_SECRET",
        "",
        "Secrets Manager name or ARN of the imgix API key",
        needed_by=EVERY_FUNCTION,
    )
    source_ids: tuple[str, ...] = setting(
        "IMGIX_SOURCE_IDS", (), "comma-separated imgix Source ids", needed_by=EVERY_FUNCTION
    )
    api_base_url: str = setting(
        "IMGIX_API_BASE_URL", "https://api.imgix.com", "https (http only on loopback)"
    )
    state_table: str = setting(
        "STATE_TABLE",
        "",
        "per-key state, ingest claims and upload receipts",
        needed_by=("indexer", "upload_router", "uploader", "backfill"),
    )
    idempotency_table: str = setting(
        "IDEMPOTENCY_TABLE", "", "Powertools Idempotency records", needed_by=("indexer",)
    )
    dead_letter_queue_url: str = setting(
        "DEAD_LETTER_QUEUE_URL",
        "",
        "where poison records go, with their reason",
        needed_by=("indexer", "upload_router"),
    )
    connect_timeout_s: float = setting("HTTP_CONNECT_TIMEOUT", 3.05, "seconds", low=0.01)
    read_timeout_s: float = setting("HTTP_READ_TIMEOUT", 15.0, "seconds", low=0.01)
    max_retries: int = setting("HTTP_MAX_RETRIES", 5, "retries of one imgix call", low=0)
    backoff_factor_s: float = setting(
        "HTTP_BACKOFF_FACTOR", 0.5, "seconds; full jitter, doubling", low=0.0
    )
    retry_after_max_s: int = setting(
        "HTTP_RETRY_AFTER_MAX", 20, "a longer Retry-After defers the record instead", low=0
    )
    max_parallel_requests: int = setting(
        "MAX_PARALLEL_REQUESTS", 4, "imgix connections per environment", low=1
    )
    pacing_divisor: int = setting(
        "IMGIX_PACING_DIVISOR",
        1,
        "without the shared budget: environments sharing the limits",
        low=1,
    )
    pacing_extra_shares: int = setting(
        "IMGIX_PACING_EXTRA_SHARES",
        0,
        "without the shared budget: shares kept for other users (the backfill)",
        low=0,
    )
    # Client-side pacing for this one execution environment (per_environment: divided by
    # its share of the limits when there is no shared budget).
    default_per_second: float = setting(
        "IMGIX_DEFAULT_PER_SECOND",
        PUBLISHED_DEFAULT_PER_SECOND,
        "calls a second (0: unpaced)",
        low=0.0,
        per_environment=True,
    )
    refresh_per_minute: float = setting(
        "IMGIX_REFRESH_PER_MINUTE",
        PUBLISHED_REFRESH_PER_MINUTE,
        "refreshes a minute (0: unpaced)",
        low=0.0,
        per_environment=True,
    )
    upload_per_second: float = setting(
        "IMGIX_UPLOAD_PER_SECOND",
        PUBLISHED_UPLOAD_PER_SECOND,
        "uploads a second (0: unpaced)",
        low=0.0,
        per_environment=True,
    )
    purge_per_second: float = setting(
        "IMGIX_PURGE_PER_SECOND",
        PUBLISHED_PURGE_PER_SECOND,
        "purges a second (0: unpaced)",
        low=0.0,
        per_environment=True,
    )
    get_asset_per_second: float = setting(
        "IMGIX_GET_ASSET_PER_SECOND",
        PUBLISHED_GET_ASSET_PER_SECOND,
        "asset reads a second (0: unpaced)",
        low=0.0,
        per_environment=True,
    )
    # The shared budget (rate/budget.py): one schedule per imgix account and limit class in
    # this DynamoDB table, for every environment, function and stack that names it. Empty:
    # each environment paces itself to its share of the limits (in-process).
    rate_budget_table: str = setting(
        "RATE_BUDGET_TABLE", "", "the shared rate budget's table (empty: in-process pacing)"
    )
    imgix_account: str = setting(
        "IMGIX_ACCOUNT", "default", "names the account's schedule in the budget table"
    )
    rate_budget_idle_only: bool = setting(
        "RATE_BUDGET_IDLE_ONLY", False, "only slots nobody else wants (the backfill)"
    )
    direct_upload_limit_bytes: int = setting(
        "DIRECT_UPLOAD_LIMIT_BYTES",
        DIRECT_UPLOAD_LIMIT_BYTES,
        "larger ingest objects go through upload sessions",
        low=1,
    )
    upload_state_machine_arn: str = setting(
        "UPLOAD_STATE_MACHINE_ARN",
        "",
        "the upload-session state machine",
        needed_by=("upload_router",),
    )
    ingest_disposition: str = setting(
        "INGEST_DISPOSITION",
        "delete",
        "what becomes of an uploaded ingest object",
        choices=INGEST_DISPOSITIONS,
    )
    failure_disposition: str = setting(
        "FAILURE_DISPOSITION",
        "tag",
        "what becomes of an ingest object that failed",
        choices=INGEST_DISPOSITIONS,
    )
    ingest_source_id: str = setting(
        "INGEST_SOURCE_ID", "", "the Source uploads go to (default: the first Source)"
    )
    upload_poll_interval_s: int = setting(
        "UPLOAD_POLL_INTERVAL_SECONDS", 15, "between upload-session status polls", low=0
    )
    upload_max_status_polls: int = setting(
        "UPLOAD_MAX_STATUS_POLLS", 240, "polls before a session counts as failed", low=1
    )
    upload_url_host_pattern: str = setting(
        "UPLOAD_URL_HOST_PATTERN", S3_HOST_PATTERN, "presigned URL hosts allowed (a regex)"
    )
    upload_url_allow_http: bool = setting(
        "UPLOAD_URL_ALLOW_HTTP", False, "plain http presigned URLs (the emulator only)"
    )
    events_queue_url: str = setting(
        "EVENTS_QUEUE_URL", "", "where deferred records go back", needed_by=("indexer",)
    )
    upload_sessions_table: str = setting(
        "UPLOAD_SESSIONS_TABLE",
        "",
        "presigned URLs of open upload sessions",
        needed_by=("uploader",),
    )
    handler_reserve_s: float = setting(
        "HANDLER_RESERVE_SECONDS",
        HANDLER_RESERVE_S,
        "invocation time kept for the work after the last imgix call",
        low=1.0,
    )
    max_pacing_wait_s: float = setting(
        "MAX_PACING_WAIT_SECONDS",
        MAX_PACING_WAIT_S,
        "a later pacing slot defers the record instead",
        low=0.0,
    )

    def call_budget_s(self) -> float:
        """Worst case of one imgix call with every retry: each attempt at its timeouts, each
        wait at the longer of its backoff cap and the Retry-After it honours, plus a pacing
        wait. Step Functions task timeouts must cover it (tests/infra/test_template.py checks)."""
        attempts = self.max_retries + 1
        waits = sum(
            max(min(BACKOFF_MAX_S, self.backoff_factor_s * 2**i), float(self.retry_after_max_s))
            for i in range(self.max_retries)
        )
        per_attempt = self.connect_timeout_s + self.read_timeout_s
        return float(attempts * per_attempt + waits + self.max_pacing_wait_s)


def declared() -> tuple[Field[Any], ...]:
    """Every setting, in declaration order."""
    return fields(Settings)


def needed_by(function: str) -> tuple[str, ...]:
    """The variables `function` refuses to start without."""
    return tuple(f.metadata["env"] for f in declared() if function in f.metadata["needed_by"])


def is_loopback(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url).split("/")[0]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return host in LOOPBACK_HOSTS


def cast_default(spec: Field[Any]) -> Any:
    """A setting's default (every setting has one: see `setting`)."""
    return spec.default


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
        value = raw.strip() if spec.metadata["needed_by"] else raw
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
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return Settings(**values)
