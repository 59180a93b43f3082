"""imgix's published limits and the product's own bounds, with the reason for each."""

from __future__ import annotations

import re

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
