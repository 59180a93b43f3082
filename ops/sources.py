"""imgix Sources as code: list, get, create and update Sources from the command line.

    python -m ops sources list   --secret-id S [--type T] [--webfolder-base-url U]
                                 [--sort=name|-name|date_deployed|enabled] [--json]
    python -m ops sources get    --secret-id S ID [--json]
    python -m ops sources create --secret-id S --name N --type s3 --subdomain SUB
                                 [--set FIELD=VALUE ...] [--deployment-file F.json]
                                 [--credentials-file F.json | --credentials-secret-id C]
                                 [--wait [--timeout SECONDS]] [--json]
    python -m ops sources update --secret-id S ID [the same options, each optional]

--secret-id names the Secrets Manager secret holding the imgix API key (as the functions
read it). Any documented deployment field is an option (--set cache_ttl_value=3600, a JSON
value or a string) or a key of --deployment-file. Secret fields (s3_secret_key,
gcs_secret_key, azure_sas_string, secret_key, password, request_*) are refused there: they
come only from --credentials-file or --credentials-secret-id (a JSON object), and are never
printed. Each deployment is checked against its type's required fields and the documented
ranges before any request. --wait follows deployment_status until "deployed".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgix_autoadder.core.config import load_settings
from imgix_autoadder.imgix.client import ImgixClient
from imgix_autoadder.imgix.errors import ImgixError
from imgix_autoadder.sources import spec
from imgix_autoadder.wiring import api_key_source, aws_client, aws_session
from ops import command_parser


class UsageError(ValueError):
    """A request this command will not send; the message says why."""


def deployment_from(args: argparse.Namespace, creating: bool) -> dict[str, Any]:
    """The deployment the options describe, secrets included, validated."""
    deployment: dict[str, Any] = {}
    if args.deployment_file:
        loaded = json.loads(Path(args.deployment_file).read_text())
        if not isinstance(loaded, dict):
            raise UsageError("--deployment-file must hold a JSON object")
        deployment.update(loaded)
    for assignment in args.set or []:
        name, sep, raw = assignment.partition("=")
        if not sep or not name:
            raise UsageError(f"--set takes FIELD=VALUE, not {assignment!r}")
        try:
            deployment[name] = json.loads(raw)
        except ValueError:
            deployment[name] = raw
    if args.type:
        deployment["type"] = args.type
    if args.subdomain:
        deployment["imgix_subdomains"] = list(args.subdomain)
    leaked = sorted(name for name in deployment if spec.is_secret(name))
    if leaked:
        raise UsageError(
            f"{', '.join(leaked)}: secret fields come only from --credentials-file or "
            "--credentials-secret-id, never from the command line or a deployment file"
        )
    deployment.update(args.credentials)
    found = spec.problems(deployment, creating)
    if found:
        raise UsageError("invalid deployment: " + "; ".join(found))
    return deployment


def credentials(args: argparse.Namespace, read_secret: Callable[[str], str]) -> dict[str, Any]:
    raw = None
    if args.credentials_file:
        raw = Path(args.credentials_file).read_text()
    elif args.credentials_secret_id:
        raw = read_secret(args.credentials_secret_id)
    if raw is None:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise UsageError("the credentials must be a JSON object of secret fields")  # no echo
    unknown = sorted(name for name in found if not spec.is_secret(name))
    if unknown:
        raise UsageError(f"not secret fields (pass them as options): {', '.join(unknown)}")
    return found


def wait_until_deployed(
    client: ImgixClient,
    source_id: str,
    timeout_s: float,
    poll_s: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    started = clock()
    while True:
        source = client.get_source(source_id)
        status = source.get("attributes", {}).get("deployment_status")
        waited = clock() - started
        say(f"deployment_status: {status} ({waited:.0f} s)")
        if status == "deployed":
            return source
        if status in ("disabled", "deleted"):
            raise UsageError(f"Source {source_id} is {status}: it will not deploy")
        if waited >= timeout_s:
            raise TimeoutError(f"Source {source_id} not deployed after {timeout_s:.0f} s")
        sleep(poll_s)


def render(sources: list[dict[str, Any]]) -> str:
    """A readable table; secret fields never appear (GET does not return them either)."""
    rows = [("id", "name", "type", "enabled", "status", "domains", "origin")]
    for source in sources:
        attributes = source.get("attributes", {})
        deployment = attributes.get("deployment", {})
        domains = [f"{s}.imgix.net" for s in deployment.get("imgix_subdomains", [])]
        domains += deployment.get("custom_domains") or []
        origin = (
            deployment.get("s3_bucket")
            or deployment.get("gcs_bucket")
            or deployment.get("azure_bucket")
            or deployment.get("bucket_name")
            or deployment.get("webfolder_base_url")
            or ""
        )
        prefix = deployment.get("s3_prefix") or deployment.get("gcs_prefix") or ""
        rows.append(
            (
                str(source.get("id", "")),
                str(attributes.get("name", "")),
                str(deployment.get("type", "")),
                "yes" if attributes.get("enabled") else "no",
                str(attributes.get("deployment_status", "")),
                ", ".join(domains),
                f"{origin}/{prefix}".rstrip("/") if prefix else str(origin),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def scrubbed(source: dict[str, Any]) -> dict[str, Any]:
    shown = json.loads(json.dumps(source))
    deployment = shown.get("attributes", {}).get("deployment", {})
    for name in list(deployment):
        if spec.is_secret(name) and not name.endswith("_encrypted"):
            deployment.pop(name)
    return dict(shown)


def parser() -> argparse.ArgumentParser:
    top = command_parser("sources", __doc__)
    commands = top.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--secret-id", required=True, help="Secrets Manager name or ARN of the API key"
    )
    common.add_argument("--api-base-url", default="https://api.imgix.com")
    common.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing = commands.add_parser("list", parents=[common])
    listing.add_argument("--type", choices=spec.TYPES)
    listing.add_argument("--webfolder-base-url")
    listing.add_argument("--sort", choices=("name", "-name", "date_deployed", "-date_deployed",
                                            "enabled", "-enabled"))  # fmt: skip
    listing.add_argument("--page-size", type=int, default=100)
    getting = commands.add_parser("get", parents=[common])
    getting.add_argument("source_id")
    for name in ("create", "update"):
        change = commands.add_parser(name, parents=[common])
        if name == "update":
            change.add_argument("source_id")
        change.add_argument("--name", required=name == "create")
        change.add_argument("--type", choices=spec.TYPES, required=name == "create")
        change.add_argument("--subdomain", action="append", help="repeat for several")
        change.add_argument("--enabled", choices=("true", "false"))
        change.add_argument("--set", action="append", metavar="FIELD=VALUE")
        change.add_argument("--deployment-file", help="a JSON object of deployment fields")
        secrets = change.add_mutually_exclusive_group()
        secrets.add_argument("--credentials-file", help="a JSON object of secret fields")
        secrets.add_argument("--credentials-secret-id", help="the same, in Secrets Manager")
        change.add_argument("--wait", action="store_true", help="until deployed")
        change.add_argument("--timeout", type=float, default=600.0)
        change.add_argument("--poll-interval", type=float, default=5.0)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    session = aws_session("sources")
    settings = load_settings(
        {
            "IMGIX_API_KEY_SECRET": args.secret_id,
            "IMGIX_SOURCE_IDS": "0" * 24,
            "IMGIX_API_BASE_URL": args.api_base_url,
        }
    )
    client = ImgixClient(api_key_source(settings, session), args.api_base_url, max_retries=3)

    def read_secret(secret_id: str) -> str:
        found = aws_client(session, "secretsmanager").get_secret_value(SecretId=secret_id)
        return str(found["SecretString"])

    try:
        return run(args, client, read_secret)
    except (UsageError, TimeoutError, ImgixError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, client: ImgixClient, read_secret: Callable[[str], str]) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr)

    if args.command == "list":
        filters = {"deployment.webfolder_base_url": args.webfolder_base_url}
        found = client.list_sources(
            args.type,
            {k: v for k, v in filters.items() if v},
            args.sort,
            page_size=args.page_size,
        )
    elif args.command == "get":
        found = [client.get_source(args.source_id)]
    else:
        args.credentials = credentials(args, read_secret)
        creating = args.command == "create"
        deployment = deployment_from(args, creating)
        attributes: dict[str, Any] = {}
        if args.name:
            attributes["name"] = args.name
        if args.enabled:
            attributes["enabled"] = args.enabled == "true"
        if deployment:
            attributes["deployment"] = deployment
        if not attributes:
            raise UsageError("nothing to update")
        source = (
            client.create_source(attributes)
            if creating
            else client.update_source(args.source_id, attributes)
        )
        if args.wait:
            source = wait_until_deployed(
                client, str(source["id"]), args.timeout, args.poll_interval, say
            )
        found = [source]
    shown = [scrubbed(s) for s in found]
    print(
        json.dumps(shown if args.command == "list" else shown[0], indent=2)
        if args.json
        else render(shown)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
