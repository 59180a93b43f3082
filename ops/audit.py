"""Is the Asset Manager complete and current? Compare a Source's assets with S3.

    python -m ops audit --stack STACK  (every Source of a deployed stack), or
    python -m ops audit --source-id ID [--source-id ID ...] --secret-id SECRET
                        [--state-table T] [--rate-budget-table T] [--content-types]
                        [--limit N [--resume KEY]] [--json] [--fix --backfill-arn ARN]

Lists S3 under each Source's prefix and every asset imgix lists for it, and classifies
each key: in sync, missing, stale, deleted at origin (with whether the state table
recorded its purge), skipped. Exit status 1 when anything is missing or stale.

--limit N audits the next N keys of the prefix (after --resume KEY) with one get asset
each, and prints the key to resume from; deleted-at-origin needs the full listing.
--fix sends the missing and stale keys through the backfill state machine, which indexes
them like any other object (ordering, idempotency and the rate budget still apply).
imgix calls take the shared rate budget's idle slots when --rate-budget-table names it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from imgix_autoadder.audit.classify import (
    AuditReport,
    OriginObject,
    Verdict,
    classify,
)
from imgix_autoadder.audit.listing import (
    assets_of,
    indexed_paths,
    listed_assets,
    origin_objects,
    purge_records,
)
from imgix_autoadder.core.config import load_settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError
from imgix_autoadder.indexing.state import StateStore
from imgix_autoadder.sources.source_map import Source
from imgix_autoadder.wiring import aws_client, aws_session, patient_client
from ops import command_parser
from ops.audit_fix import send_fixes


def parser() -> argparse.ArgumentParser:
    found = command_parser("audit", __doc__)
    found.add_argument("--stack", help="a deployed stack: every Source it keeps, its tables")
    found.add_argument("--source-id", action="append", help="repeat for several")
    found.add_argument("--secret-id", help="the imgix API key's secret")
    found.add_argument("--api-base-url", default="https://api.imgix.com")
    found.add_argument("--state-table", help="the stack's StateTableName: purges recorded")
    found.add_argument("--rate-budget-table", default="", help="the shared rate budget's table")
    found.add_argument("--imgix-account", default="default")
    found.add_argument("--full-share", action="store_true", help="not only idle slots")
    found.add_argument("--content-types", action="store_true", help="HeadObject every key")
    found.add_argument("--limit", type=int, help="audit the next N keys only")
    found.add_argument("--resume", default="", help="the key a bounded run printed")
    found.add_argument("--json", action="store_true", help="JSON instead of a table")
    found.add_argument("--fix", action="store_true", help="index the missing and stale keys")
    found.add_argument("--backfill-arn", help="the stack's BackfillStateMachineArn (--fix)")
    found.add_argument("--page-size", type=int, default=100, help="imgix assets a page")
    found.add_argument("--s3-page-size", type=int, default=1000, help="S3 keys a page")
    found.add_argument("--no-progress", action="store_true")
    return found


def audit_source(
    args: argparse.Namespace, client: ImgixClient, s3: Any, state: StateStore | None, source: Source
) -> tuple[AuditReport, list[OriginObject], str]:
    """One Source's report, the objects listed, and the key a bounded run stopped at ('' after
    a full one)."""
    quiet = args.no_progress or args.json

    def progress(what: str) -> Any:
        return tqdm(desc=f"{source.id} {what}", unit=" keys", disable=quiet, file=sys.stderr)

    def paged(bar: Any) -> Callable[[int], None]:
        pages = itertools.count(1)

        def page(count: int) -> None:
            bar.update(count)
            bar.set_postfix(pages=next(pages), refresh=False)

        return page

    with progress("S3") as bar:
        listing = origin_objects(
            s3, source, paged(bar), args.resume, args.limit, args.content_types, args.s3_page_size
        )
        objects = list(listing)
    with progress("imgix") as bar:
        if args.limit is None:
            assets = list(listed_assets(client, source, paged(bar), args.page_size))
        else:  # a bounded run asks for its own keys, and says nothing of any other
            paths = indexed_paths(source, objects)
            assets = list(assets_of(client, source, paths))
            bar.update(len(paths))
    report = classify(source, objects, assets)
    gone = [f.key for f in report.findings if f.verdict is Verdict.DELETED_AT_ORIGIN]
    if state is not None and gone:
        records = purge_records(state, source.bucket, gone)
        report = classify(source, objects, assets, records.get)
    stopped_at = objects[-1].key if args.limit is not None and len(objects) == args.limit else ""
    return report, objects, stopped_at


def render(report: AuditReport, stopped_at: str) -> str:
    counts = report.counts()
    lines = [f"Source {report.source_id}"]
    lines += [f"  {verdict.value:18} {counts.get(verdict, 0):>8}" for verdict in Verdict]
    for finding in report.findings:
        if finding.verdict not in (Verdict.IN_SYNC, Verdict.SKIPPED):
            lines.append(f"  {finding.verdict.value:18} {finding.key}  {finding.reason}")
    if stopped_at:
        lines.append(f"  bounded run: resume with --resume {json.dumps(stopped_at)}")
    return "\n".join(lines)


def from_stack(args: argparse.Namespace, cloudformation: Any) -> None:
    """What a deployed stack's outputs say, where the command line did not say it."""
    [stack] = cloudformation.describe_stacks(StackName=args.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    ids = [i.strip() for i in outputs.get("SourceIds", "").split(",") if i.strip()]
    args.source_id = args.source_id or ids
    args.secret_id = args.secret_id or outputs.get("ApiKeySecretArn")
    args.state_table = args.state_table or outputs.get("StateTableName")
    args.rate_budget_table = args.rate_budget_table or outputs.get("RateBudgetTableName", "")
    args.backfill_arn = args.backfill_arn or outputs.get("BackfillStateMachineArn")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.stack:
        from_stack(args, aws_client(aws_session("audit"), "cloudformation"))
    if not args.source_id or not args.secret_id:
        parser().error("name the Sources and the key (--source-id, --secret-id) or --stack")
    env = {
        "IMGIX_API_KEY_SECRET": args.secret_id,
        "IMGIX_SOURCE_IDS": ",".join(args.source_id),
        "IMGIX_API_BASE_URL": args.api_base_url,
        "RATE_BUDGET_TABLE": args.rate_budget_table,
        "IMGIX_ACCOUNT": args.imgix_account,
        "RATE_BUDGET_IDLE_ONLY": "false" if args.full_share else "true",
        "MAX_PACING_WAIT_SECONDS": "3600",  # an operator's command waits for idle slots
    }
    settings = load_settings(env)
    session = aws_session("audit")
    client = patient_client(settings, session)
    s3 = aws_client(session, "s3")
    state = (
        StateStore(aws_client(session, "dynamodb"), args.state_table) if args.state_table else None
    )
    needs_fixing = False
    documents = []
    try:
        for source_id in args.source_id:
            source = Source.from_api(client.get_source(source_id))
            report, objects, stopped_at = audit_source(args, client, s3, state, source)
            needs_fixing |= bool(report.needs_fixing)
            if args.json:
                documents.append(
                    {
                        "source_id": source_id,
                        "counts": {v.value: n for v, n in report.counts().items()},
                        "findings": [asdict(f) for f in report.findings],
                        "resume": stopped_at or None,
                    }
                )
            else:
                print(render(report, stopped_at))
            if args.fix and report.needs_fixing:
                sfn = aws_client(session, "stepfunctions")
                for finding in report.needs_fixing:
                    print(f"fix: {finding.verdict.value} {finding.key}", file=sys.stderr)
                for execution in send_fixes(sfn, args.backfill_arn, source, report, objects):
                    print(f"sent to the backfill: {execution}", file=sys.stderr)
    except ImgixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(documents, indent=2))
    return 1 if needs_fixing else 0
