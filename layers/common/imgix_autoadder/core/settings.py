"""Every setting, declared once: its variable, type, default, lower bound, allowed values
and the functions that cannot run without it (one field of Settings each).

load_settings (config.py) reads and validates them, the imgix client takes its defaults
from them, and docs/settings.md is generated from them (tests/infra/test_settings.py).
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any

from imgix_autoadder.core.limits import (
    BACKOFF_MAX_S,
    DIRECT_UPLOAD_LIMIT_BYTES,
    HANDLER_RESERVE_S,
    INGEST_DISPOSITIONS,
    MAX_PACING_WAIT_S,
    PUBLISHED_DEFAULT_PER_SECOND,
    PUBLISHED_GET_ASSET_PER_SECOND,
    PUBLISHED_PURGE_PER_SECOND,
    PUBLISHED_REFRESH_PER_MINUTE,
    PUBLISHED_UPLOAD_PER_SECOND,
    S3_HOST_PATTERN,
)

EVERY_FUNCTION = ("indexer", "upload_router", "uploader", "backfill", "source_manager", "auditor")


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
    # S3 user metadata and tags as imgix custom fields (indexing/fields.py): off while empty.
    metadata_fields: tuple[str, ...] = setting(
        "METADATA_FIELDS", (), "user-metadata keys (x-amz-meta-<key>) kept as custom fields"
    )
    tag_fields: tuple[str, ...] = setting(
        "TAG_FIELDS", (), "object-tag keys kept as custom fields (lower-cased names)"
    )
    custom_field_prefix: str = setting(
        "CUSTOM_FIELD_PREFIX",
        "",
        "prefix of the custom fields METADATA_FIELDS and TAG_FIELDS write",
    )
    mark_deleted_assets: bool = setting(
        "MARK_DELETED_ASSETS", False, "a deleted key's asset gets origin_status=deleted"
    )
    # The shared budget (rate/budget.py): one schedule per imgix account and limit class in
    # this DynamoDB table, for every environment, function and stack that names it. Empty:
    # each environment paces itself to its share of the limits (in-process).
    rate_budget_table: str = setting(
        "RATE_BUDGET_TABLE", "", "the shared rate budget's table (empty: in-process pacing)"
    )
    imgix_account: str = setting(
        "IMGIX_ACCOUNT", "default", "names the account's lanes in the budget table"
    )
    rate_budget_idle_only: bool = setting(
        "RATE_BUDGET_IDLE_ONLY", False, "only lanes free now, one at a time (the backfill)"
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
    ingest_queue_url: str = setting(
        "INGEST_QUEUE_URL",
        "",
        "where ingest records go back while imgix is down",
        needed_by=("upload_router",),
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
        "a pacing wait longer than this defers the record",
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


def cast_default(spec: Field[Any]) -> Any:
    """A setting's default (every setting has one: see `setting`)."""
    return spec.default
