"""The one place configuration is read: environment variables, validated at cold start.

Every problem is reported at once, so a misconfigured deploy fails its first invocation
with a message that names each bad variable instead of failing later, record by record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Settings:
    api_key_secret: str
    source_ids: tuple[str, ...]
    api_base_url: str = "https://api.imgix.com"
    state_table: str = ""
    idempotency_table: str = ""
    dead_letter_queue_url: str = ""
    connect_timeout_s: float = 3.05
    read_timeout_s: float = 15.0
    max_retries: int = 5
    backoff_factor_s: float = 0.5
    retry_after_max_s: int = 20
    max_parallel_requests: int = 4
    # Client-side pacing for this one execution environment: the template divides the
    # published limits by the SQS event source's MaximumConcurrency.
    default_per_second: float = PUBLISHED_DEFAULT_PER_SECOND
    refresh_per_minute: float = PUBLISHED_REFRESH_PER_MINUTE
    upload_per_second: float = PUBLISHED_UPLOAD_PER_SECOND
    purge_per_second: float = PUBLISHED_PURGE_PER_SECOND
    get_asset_per_second: float = PUBLISHED_GET_ASSET_PER_SECOND
    # The shared budget (rate_budget.py): one schedule per imgix account and limit class in
    # this DynamoDB table, for every environment, function and stack that names it. Empty:
    # each environment paces itself to its share of the limits (in-process).
    rate_budget_table: str = ""
    imgix_account: str = "default"
    rate_budget_idle_only: bool = False  # the backfill: only slots nobody else wants
    direct_upload_limit_bytes: int = DIRECT_UPLOAD_LIMIT_BYTES
    upload_state_machine_arn: str = ""
    ingest_disposition: str = "delete"
    failure_disposition: str = "tag"
    ingest_source_id: str = ""
    upload_poll_interval_s: int = 15
    upload_max_status_polls: int = 240
    upload_url_host_pattern: str = S3_HOST_PATTERN
    upload_url_allow_http: bool = False
    events_queue_url: str = ""
    upload_sessions_table: str = ""
    handler_reserve_s: float = HANDLER_RESERVE_S
    max_pacing_wait_s: float = MAX_PACING_WAIT_S

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


def is_loopback(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url).split("/")[0]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return host in LOOPBACK_HOSTS


def _number[T: (int, float)](
    env: Mapping[str, str], name: str, cast: type[T], default: T, low: T, problems: list[str]
) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a {cast.__name__}")
        return default
    if value < low:
        problems.append(f"{name}={raw!r} must be >= {low}")
    return value


def load_settings(env: Mapping[str, str] | None = None, required: tuple[str, ...] = ()) -> Settings:
    """Read and validate the environment; raise ConfigError naming every problem.

    `required` names the optional variables this particular function cannot run without.
    """
    env = os.environ if env is None else env
    problems: list[str] = [
        f"{name} is required by this function" for name in required if not env.get(name, "").strip()
    ]

    secret = env.get("IMGIX_API_KEY_SECRET", "").strip()
    if not secret:
        problems.append("IMGIX_API_KEY_SECRET (Secrets Manager name or ARN) is required")

    source_ids = tuple(s.strip() for s in env.get("IMGIX_SOURCE_IDS", "").split(",") if s.strip())
    if not source_ids:
        problems.append("IMGIX_SOURCE_IDS (comma-separated imgix Source ids) is required")
    problems.extend(
        f"IMGIX_SOURCE_IDS entry {sid!r} is not a 24-character hex Source id"
        for sid in source_ids
        if not SOURCE_ID_PATTERN.match(sid)
    )

    base_url = env.get("IMGIX_API_BASE_URL", "https://api.imgix.com").rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", base_url):
        problems.append(f"IMGIX_API_BASE_URL={base_url!r} must be scheme://host[:port]")
    elif not base_url.startswith("https://") and not is_loopback(base_url):
        # The API key travels in every request: only the local emulator may use plain http.
        problems.append(f"IMGIX_API_BASE_URL={base_url!r} must use https (http only on loopback)")

    disposition = env.get("INGEST_DISPOSITION", "delete")
    if disposition not in INGEST_DISPOSITIONS:
        problems.append(f"INGEST_DISPOSITION={disposition!r} must be one of {INGEST_DISPOSITIONS}")

    failure_disposition = env.get("FAILURE_DISPOSITION", "tag")
    if failure_disposition not in INGEST_DISPOSITIONS:
        problems.append(
            f"FAILURE_DISPOSITION={failure_disposition!r} must be one of {INGEST_DISPOSITIONS}"
        )

    host_pattern = env.get("UPLOAD_URL_HOST_PATTERN", Settings.upload_url_host_pattern)
    try:
        re.compile(host_pattern)
    except re.error as exc:
        problems.append(f"UPLOAD_URL_HOST_PATTERN is not a regular expression: {exc}")

    # Each of N concurrent execution environments paces itself to 1/N of each published
    # limit (N = the SQS event source's MaximumConcurrency), so together they stay under it.
    # IMGIX_PACING_EXTRA_SHARES: shares kept for other users of the same limits (the backfill).
    # With the shared budget every caller may use the whole limit: the schedule divides it.
    shared_budget = env.get("RATE_BUDGET_TABLE", "")
    environments = _number(env, "IMGIX_PACING_DIVISOR", int, 1, 1, problems) or 1
    extra = _number(env, "IMGIX_PACING_EXTRA_SHARES", int, 0, 0, problems)
    share = 1.0 if shared_budget else (environments + extra) / PACING_HEADROOM

    settings = Settings(
        api_key_secret=secret,
        source_ids=source_ids,
        api_base_url=base_url,
        state_table=env.get("STATE_TABLE", ""),
        idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
        dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", ""),
        connect_timeout_s=_number(env, "HTTP_CONNECT_TIMEOUT", float, 3.05, 0.01, problems),
        read_timeout_s=_number(env, "HTTP_READ_TIMEOUT", float, 15.0, 0.01, problems),
        max_retries=_number(env, "HTTP_MAX_RETRIES", int, 5, 0, problems),
        backoff_factor_s=_number(env, "HTTP_BACKOFF_FACTOR", float, 0.5, 0.0, problems),
        retry_after_max_s=_number(env, "HTTP_RETRY_AFTER_MAX", int, 20, 0, problems),
        max_parallel_requests=_number(env, "MAX_PARALLEL_REQUESTS", int, 4, 1, problems),
        default_per_second=_number(
            env,
            "IMGIX_DEFAULT_PER_SECOND",
            float,
            PUBLISHED_DEFAULT_PER_SECOND / share,
            0.0,
            problems,
        ),
        refresh_per_minute=_number(
            env,
            "IMGIX_REFRESH_PER_MINUTE",
            float,
            PUBLISHED_REFRESH_PER_MINUTE / share,
            0.0,
            problems,
        ),
        upload_per_second=_number(
            env,
            "IMGIX_UPLOAD_PER_SECOND",
            float,
            PUBLISHED_UPLOAD_PER_SECOND / share,
            0.0,
            problems,
        ),
        purge_per_second=_number(
            env,
            "IMGIX_PURGE_PER_SECOND",
            float,
            PUBLISHED_PURGE_PER_SECOND / share,
            0.0,
            problems,
        ),
        get_asset_per_second=_number(
            env,
            "IMGIX_GET_ASSET_PER_SECOND",
            float,
            PUBLISHED_GET_ASSET_PER_SECOND / share,
            0.0,
            problems,
        ),
        rate_budget_table=shared_budget,
        imgix_account=env.get("IMGIX_ACCOUNT", "default") or "default",
        rate_budget_idle_only=env.get("RATE_BUDGET_IDLE_ONLY", "false").lower() == "true",
        direct_upload_limit_bytes=_number(
            env, "DIRECT_UPLOAD_LIMIT_BYTES", int, DIRECT_UPLOAD_LIMIT_BYTES, 1, problems
        ),
        upload_state_machine_arn=env.get("UPLOAD_STATE_MACHINE_ARN", ""),
        ingest_disposition=disposition,
        failure_disposition=failure_disposition,
        ingest_source_id=env.get("INGEST_SOURCE_ID", "") or (source_ids[0] if source_ids else ""),
        upload_poll_interval_s=_number(env, "UPLOAD_POLL_INTERVAL_SECONDS", int, 15, 0, problems),
        upload_max_status_polls=_number(env, "UPLOAD_MAX_STATUS_POLLS", int, 240, 1, problems),
        upload_url_host_pattern=host_pattern,
        upload_url_allow_http=env.get("UPLOAD_URL_ALLOW_HTTP", "false").lower() == "true",
        events_queue_url=env.get("EVENTS_QUEUE_URL", ""),
        upload_sessions_table=env.get("UPLOAD_SESSIONS_TABLE", ""),
        handler_reserve_s=_number(
            env, "HANDLER_RESERVE_SECONDS", float, HANDLER_RESERVE_S, 1.0, problems
        ),
        max_pacing_wait_s=_number(
            env, "MAX_PACING_WAIT_SECONDS", float, MAX_PACING_WAIT_S, 0.0, problems
        ),
    )
    if settings.direct_upload_limit_bytes > DIRECT_UPLOAD_LIMIT_BYTES:
        problems.append(
            f"DIRECT_UPLOAD_LIMIT_BYTES may not exceed imgix's {DIRECT_UPLOAD_LIMIT_BYTES} bytes"
        )
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return settings
