"""One 2 GB-class PUT to a presigned URL: `stream.py MODE URL SIZE`, with the layer and the
repository on PYTHONPATH. MODE `transfer`: the product's Uploader.transfer; `plain`: the
same S3 GET body handed to urllib3 as a streamed PUT (the baseline). Prints the seconds
and the process's peak resident memory as JSON."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import boto3

BUCKET, KEY, SESSIONS = "bench-ingest", "big.bin", "bench-sessions"


def transfer(s3: Any, url: str, size: int) -> None:
    from imgix_autoadder.core.config import load_settings
    from imgix_autoadder.imgix.client import ImgixClient
    from imgix_autoadder.ingest.job import UploadJob
    from imgix_autoadder.ingest.uploader import Uploader

    settings = load_settings(
        {
            "IMGIX_API_KEY_SECRET": "x",
            "IMGIX_SOURCE_IDS": "a" * 24,
            "UPLOAD_URL_HOST_PATTERN": r"^127\.0\.0\.1$",
            "UPLOAD_URL_ALLOW_HTTP": "true",
            "UPLOAD_SESSIONS_TABLE": SESSIONS,
        }
    )
    etag = s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"].strip('"')
    job = UploadJob(BUCKET, KEY, "", etag, size, "a" * 24, KEY)
    uploader = Uploader(
        ImgixClient("unused", "http://127.0.0.1"),
        s3,
        settings,
        session_store=boto3.client("dynamodb"),
    )
    uploader.sessions.put("bench", url)  # as CreateSession leaves it
    uploader.transfer(job, {"id": "bench", "content_type": "application/octet-stream"})


def plain(s3: Any, url: str, size: int) -> None:
    import urllib3

    body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"]
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    urllib3.PoolManager().request("PUT", url, body=body, headers=headers)


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: ru_maxrss survives execve and would report the parent's peak.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def main(argv: list[str]) -> dict[str, float]:
    mode, url, size = argv[0], argv[1], int(argv[2])
    s3 = boto3.client("s3")
    started = time.perf_counter()
    (transfer if mode == "transfer" else plain)(s3, url, size)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
