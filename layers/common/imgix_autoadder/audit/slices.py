"""The audit in bounded slices, for a run in AWS that outlasts any one Lambda invocation:
each slice stops at its deadline and says where the next one starts.

- forward: S3's keys from `start_after`, each asked of imgix (one get asset): in sync,
  missing, stale or skipped;
- backward: imgix's asset list from `cursor`, each asked of S3 (one HeadObject): deleted
  at origin.
Neither relies on an order imgix does not document.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgix_autoadder.audit.classify import ListedAsset, Verdict, classify
from imgix_autoadder.audit.listing import assets_of, indexed_paths, origin_objects
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import OutOfTime
from imgix_autoadder.s3.origin import S3Origin
from imgix_autoadder.sources.source_map import Source

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEYS_A_STEP = 50  # S3 keys listed, then asked of imgix, between two looks at the clock


@dataclass
class Slice:
    counts: Counter[str] = field(default_factory=Counter)
    resume: str | None = None  # where the next slice starts; None: this side is done


def forward(
    client: ImgixClient, s3: S3Client, source: Source, start_after: str, deadline: float
) -> Slice:
    done = Slice()
    resume = start_after
    while True:  # at least one step a slice, however short: every slice makes progress
        objects = list(origin_objects(s3, source, start_after=resume, limit=KEYS_A_STEP))
        if not objects:
            return done
        try:
            assets = list(assets_of(client, source, indexed_paths(source, objects)))
        except OutOfTime:  # no slot before the deadline: this step again, next slice
            break
        report = classify(source, objects, assets)
        done.counts.update(f.verdict.value for f in report.findings)
        resume = objects[-1].key
        if len(objects) < KEYS_A_STEP:
            return done
        if time.monotonic() >= deadline:
            break
    done.resume = resume
    return done


def backward(
    client: ImgixClient, s3: S3Client, source: Source, cursor: str, deadline: float
) -> Slice:
    done = Slice(resume=cursor)
    origin = S3Origin(s3)  # the indexer's own reading of a HeadObject
    pages = client.asset_pages(source.id, cursor)
    while True:  # at least one page a slice
        try:
            items, next_cursor = next(pages)
        except OutOfTime:  # this page again, next slice
            return done
        except StopIteration:
            break
        for item in items:
            key = source.object_key(ListedAsset.from_api(item).origin_path)
            if not origin.exists(source.bucket, key):
                done.counts[Verdict.DELETED_AT_ORIGIN.value] += 1
        done.resume = next_cursor
        if next_cursor is None or time.monotonic() >= deadline:
            return done
    return done
