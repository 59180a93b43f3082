"""Check the imgix API key and Source configuration before (or after) deploying.

    python -m ops doctor --secret-id SECRET --source-id ID [--bucket B] [--prefix P] [--ingest]
                         [--subdomain S ...]

For a stack-managed Source, pass the stack's intent (--bucket, --prefix, --subdomain,
--ingest for allows_upload): each difference is reported as drift.

Reads the key from Secrets Manager, as the functions do, and reports one line per check:
the Source's settings, then each imgix permission apart (Sources, Asset Manager Browse,
Asset Manager Edit, Purge). Probes change nothing except a purge of a path that cannot
exist (harmless); a second run gives the same answer. Exit 1 when anything fails.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from imgix_autoadder.core.config import load_settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError
from imgix_autoadder.sources.source_map import Source
from imgix_autoadder.wiring import api_key_source, aws_session
from ops import command_parser

PROBE_PATH = "__imgix-autoadder-doctor__/probe-that-does-not-exist.png"


@dataclass(frozen=True)
class Finding:
    ok: bool
    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{'ok' if self.ok else 'FAIL'}] {self.check}: {self.detail}"


def diagnose(
    client: ImgixClient,
    source_id: str,
    bucket: str | None = None,
    prefix: str | None = None,
    ingest: bool = False,
    subdomains: list[str] | None = None,
) -> list[Finding]:
    """Every check, with each permission the product needs reported on its own line."""
    findings: list[Finding] = []
    source: Source | None = None
    try:
        data = client.get_source(source_id)
    except ImgixError as exc:
        if exc.status == 403:
            findings.append(Finding(False, "Sources permission", f"missing ({exc.detail})"))
        else:
            hint = {
                401: "the API key is not valid",
                404: "no Source with this id in the key's account" + _suggest(client, bucket),
            }.get(exc.status, str(exc))
            return [Finding(False, "read the Source", hint)]
    else:
        source = Source.from_api(data)
        findings.append(Finding(True, "Sources permission", "granted (read the Source)"))
        findings += _source_checks(source, data, bucket, prefix, ingest)
        if subdomains:
            held, wanted = sorted(source.subdomains), sorted(subdomains)
            findings.append(
                Finding(
                    held == wanted,
                    "subdomains",
                    f"Source has {', '.join(held) or 'none'}, expected {', '.join(wanted)}",
                )
            )
    findings += _permission_checks(client, source_id, source)
    return findings


def _source_checks(
    source: Source, data: dict[str, Any], bucket: str | None, prefix: str | None, ingest: bool
) -> list[Finding]:
    attributes = data.get("attributes", {})
    findings = [
        Finding(
            source.type == "s3",
            "Source type",
            f"{source.type!r}" + ("" if source.type == "s3" else ", must be 's3'"),
        ),
        Finding(
            source.enabled,
            "enabled",
            "yes" if source.enabled else "no: imgix serves 410 for new assets",
        ),
    ]
    status = str(attributes.get("deployment_status", "unknown"))
    findings.append(Finding(status == "deployed", "deployment status", status))
    if bucket is not None:
        findings.append(
            Finding(
                source.bucket == bucket,
                "bucket",
                f"Source reads {source.bucket!r}, the stack watches {bucket!r}",
            )
        )
    if prefix is not None:
        wanted = prefix.strip("/")
        findings.append(
            Finding(
                source.prefix == wanted,
                "prefix",
                f"Source prefix {source.prefix!r}, expected {wanted!r}",
            )
        )
    domains = source.urls("")
    findings.append(
        Finding(
            bool(domains),
            "imgix domains",
            ", ".join(d.removesuffix("/") for d in domains) or "none: deletes cannot be purged",
        )
    )
    if ingest:
        findings.append(
            Finding(
                source.allows_upload,
                "uploads allowed",
                "yes"
                if source.allows_upload
                else "no: give imgix write access to the bucket (allows_upload)",
            )
        )
    return findings


def _permission_checks(client: ImgixClient, source_id: str, source: Source | None) -> list[Finding]:
    """Probes with no side effect beyond the documented one of a purge:
    - Browse: get an asset that does not exist (404 = allowed to look);
    - Edit: update that same missing asset (404 = allowed to edit, nothing changed);
    - Purge: purge a URL nothing is served at. A repeat within 10 s may answer 409, which
      imgix documents as a success, so a second run gives the same answer."""
    findings = [
        _probe(
            "Asset Manager Browse permission",
            "needed to ask imgix whether an asset is indexed",
            lambda: client.get_asset(source_id, PROBE_PATH),
        ),
        _probe(
            "Asset Manager Edit permission",
            "needed to add, refresh and upload",
            lambda: client.update_asset(source_id, PROBE_PATH, {}),
        ),
    ]
    if source is None or not source.urls(""):
        findings.append(
            Finding(False, "Purge permission", "not checked: no domain of the Source to purge")
        )
    else:
        url = source.urls(PROBE_PATH)[0]
        findings.append(
            _probe(
                "Purge permission",
                "needed to purge deletes, refresh and overwrite uploads",
                lambda: client.purge(url),
            )
        )
    return findings


def _probe(check: str, why: str, call: Any) -> Finding:
    try:
        call()
    except ImgixError as exc:
        if exc.status == 404:  # the probe path does not exist: the key was allowed to ask
            return Finding(True, check, f"granted ({why})")
        if exc.status in (401, 403):
            return Finding(False, check, f"missing: {why} ({exc.detail})")
        return Finding(False, check, str(exc))
    return Finding(True, check, f"granted ({why})")


def _suggest(client: ImgixClient, bucket: str | None) -> str:
    try:
        sources = [Source.from_api(s) for s in client.list_sources(deployment_type="s3")]
    except ImgixError:
        return ""
    matching = [s.id for s in sources if bucket is None or s.bucket == bucket]
    return f"; s3 Sources{' on ' + bucket if bucket else ''}: {', '.join(matching) or 'none'}"


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("doctor", __doc__)
    parser.add_argument("--secret-id", required=True, help="Secrets Manager name or ARN")
    parser.add_argument("--source-id", required=True)
    parser.add_argument("--bucket", help="the origin bucket the stack watches")
    parser.add_argument("--prefix", help="the Source prefix you expect")
    parser.add_argument("--ingest", action="store_true", help="also check uploads")
    parser.add_argument(
        "--subdomain", action="append", help="a subdomain the Source should have (repeat)"
    )
    parser.add_argument("--api-base-url", default="https://api.imgix.com")
    args = parser.parse_args(argv)
    settings = load_settings(
        {
            "IMGIX_API_KEY_SECRET": args.secret_id,
            "IMGIX_SOURCE_IDS": "0" * 24,
            "IMGIX_API_BASE_URL": args.api_base_url,
        }
    )
    keys = api_key_source(settings, aws_session("doctor"))
    client = ImgixClient(keys, args.api_base_url, max_retries=2)
    findings = diagnose(
        client, args.source_id, args.bucket, args.prefix, args.ingest, args.subdomain
    )
    for finding in findings:
        print(finding)
    failed = [f for f in findings if not f.ok]
    print(f"\n{len(findings) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
