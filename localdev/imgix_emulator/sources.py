"""Sources, per https://docs.imgix.com/apis/management/sources (Management API,
Sources) and imgix-management-js's README (paging, sorting, filtering examples).

Routes: GET sources, POST sources, GET sources/:id, PATCH sources/:id. "All Source
operations require the Sources permission."
"""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from localdev.imgix_emulator.account import Account
from localdev.imgix_emulator.errors import ApiError, document
from localdev.imgix_emulator.request import Request

TYPES = ("azure", "gcs", "s3", "webfolder", "webproxy", "s3_compatible")
# "*Required for Source creation", per type (Source Deployment tables).
REQUIRED = {
    "s3": ("s3_access_key", "s3_bucket", "s3_secret_key"),
    "gcs": ("gcs_access_key", "gcs_bucket", "gcs_secret_key"),
    "azure": ("azure_account", "azure_bucket", "azure_sas_string", "azure_service_type"),
    "webfolder": ("webfolder_base_url",),
    "webproxy": (),
    "s3_compatible": (
        "access_key_id",
        "bucket_name",
        "endpoint_url",
        "region",
        "secret_key",
        "storage_provider",
    ),
}
ENUMS = {
    "cache_ttl_behavior": ("respect_origin", "override_origin", "enforce_minimum"),
    "azure_service_type": ("blob", "file"),
    "storage_provider": ("DigitalOcean", "Linode", "Wasabi"),
    "robots.txt": ("origin", "allow-all", "disallow-all"),
}
# "Note: Will not be returned on subsequent GET requests" (and the plain-text originals of
# the *_encrypted fields, which GET returns instead).
SECRETS = (
    "s3_secret_key",
    "gcs_secret_key",
    "azure_sas_string",
    "secret_key",
    "password",
    "request_handshake",
    "request_signing_key",
)
# Source Deployment: All Source Types, with their documented defaults.
DEFAULTS: dict[str, Any] = {
    "allows_upload": False,
    "annotation": "New deployment created for source by imgix.",
    "cache_ttl_behavior": "respect_origin",
    "cache_ttl_error": 300,
    "cache_ttl_value": 31536000,
    "crossdomain_xml_enabled": False,
    "custom_domains": [],
    "default_params": {},
    "image_error": None,
    "image_error_append_qs": False,
    "image_missing": None,
    "image_missing_append_qs": False,
    "secure_url_enabled": False,
}
SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DEFAULT_PAGE_SIZE = 100


class Sources:
    def __init__(self, account: Account) -> None:
        self.account = account
        # Seconds a deploy takes: "deploying" until then, "deployed" after (undocumented
        # duration; modelled as instant by default, the status still moves).
        self.deploy_seconds = 0.0

    # -- set-up for tests ------------------------------------------------------------------
    def seed(self, name: str, deployment: dict[str, Any], enabled: bool = True) -> str:
        """A Source that already exists in the account (made in the dashboard)."""
        source_id = secrets.token_hex(12)
        with self.account.lock:
            self.account.sources[source_id] = self._record(source_id, name, deployment, enabled)
            self.account.sources[source_id]["attributes"]["deployment_status"] = "deployed"
        return source_id

    def domains(self) -> set[str]:
        """Every domain of the account: <subdomain>.imgix.net and the custom domains."""
        with self.account.lock:
            deployments = [s["attributes"]["deployment"] for s in self.account.sources.values()]
        found = {f"{sub}.imgix.net" for d in deployments for sub in d.get("imgix_subdomains", [])}
        found.update(domain for d in deployments for domain in d.get("custom_domains") or [])
        return found

    # -- routes ------------------------------------------------------------------------------
    def index(self, request: Request) -> tuple[int, Any]:
        """Filters deployment.type and deployment.webfolder_base_url (Source Filters) and
        name (imgix-management-js README); sorts date_deployed, enabled, name, "-" for
        descending; page[number] from 0 and page[size] (README). Undocumented: modelled
        with meta.pagination {page_number, page_size, total_records, total_pages}."""
        with self.account.lock:
            found = [self._visible(s) for s in self.account.sources.values()]
        wanted = {
            "deployment.type": request.arg("filter[deployment.type]"),
            "deployment.webfolder_base_url": request.arg("filter[deployment.webfolder_base_url]"),
            "name": request.arg("filter[name]"),
        }
        for name, value in wanted.items():
            if value is not None:
                found = [s for s in found if _field(s, name) == value]
        for key in reversed((request.arg("sort") or "").split(",")):
            if not key:
                continue
            name = key.lstrip("-")
            if name not in ("date_deployed", "enabled", "name"):
                raise ApiError(400, "Bad Request", f"cannot sort Sources by {name!r}")
            found.sort(key=lambda s: _field(s, name), reverse=key.startswith("-"))
        number = request.whole("page[number]", 0, 0)
        size = request.whole("page[size]", DEFAULT_PAGE_SIZE, 1)
        page = found[number * size : (number + 1) * size]
        meta = {
            "pagination": {
                "page_number": number,
                "page_size": size,
                "total_records": len(found),
                "total_pages": -(-len(found) // size),
            }
        }
        return 200, document(page, meta)

    def get(self, request: Request) -> tuple[int, Any]:
        return 200, document(self._visible(self.account.source(request.params["source_id"])))

    def create(self, request: Request) -> tuple[int, Any]:
        """POST sources: "Create (and deploy) a new Source"; name, deployment.type and
        deployment.imgix_subdomains plus the type's starred fields are required."""
        data = _resource(request.json_body())
        if "id" in data:
            raise ApiError(400, "Bad Request", "a new Source has no id")
        attributes = data.get("attributes") or {}
        name = attributes.get("name")
        problems = [] if isinstance(name, str) and name else ["name is required"]
        deployment = attributes.get("deployment")
        if not isinstance(deployment, dict):
            raise ApiError(400, "Bad Request", "; ".join([*problems, "deployment is required"]))
        problems += validate_deployment(deployment)
        problems += self._taken(deployment, None)
        if problems:
            raise ApiError(400, "Bad Request", "; ".join(problems))
        source_id = secrets.token_hex(12)
        enabled = attributes.get("enabled", True)
        with self.account.lock:
            self.account.sources[source_id] = self._record(
                source_id, str(name), deployment, enabled
            )
        # Undocumented status: modelled as JSON:API's 201 Created.
        return 201, document(self._visible(self.account.sources[source_id], read=False))

    def patch(self, request: Request) -> tuple[int, Any]:
        """PATCH sources/:id: "Any changes impacting the deployment will automatically
        trigger a Source deploy"; "if you update the Source type you will also need to
        provide the required parameters for that Source type"."""
        source_id = request.params["source_id"]
        source = self.account.source(source_id)
        data = _resource(request.json_body())
        if data.get("id") not in (None, source_id):
            raise ApiError(400, "Bad Request", "data.id does not match the URL")
        attributes = data.get("attributes") or {}
        stored = source["attributes"]["deployment"]
        change = attributes.get("deployment") or {}
        if not isinstance(change, dict):
            raise ApiError(400, "Bad Request", "deployment must be an object")
        retyped = "type" in change and change["type"] != stored.get("type")
        base = {k: v for k, v in stored.items() if k in DEFAULTS} if retyped else stored
        deployment = {**base, **change}
        problems = validate_deployment(deployment) + self._taken(deployment, source_id)
        if "name" in attributes and not (
            isinstance(attributes["name"], str) and attributes["name"]
        ):
            problems.append("name must be a non-empty string")
        if "enabled" in attributes and not isinstance(attributes["enabled"], bool):
            problems.append("enabled must be true or false")
        if problems:
            raise ApiError(400, "Bad Request", "; ".join(problems))
        with self.account.lock:
            for name in ("name", "enabled"):
                if name in attributes:
                    source["attributes"][name] = attributes[name]
            if change:
                source["attributes"]["deployment"] = {**DEFAULTS, **deployment}
                self._deploy(source)
        return 200, document(self._visible(source, read=not change))

    # -- helpers -------------------------------------------------------------------------------
    def _record(
        self, source_id: str, name: str, deployment: dict[str, Any], enabled: bool
    ) -> dict[str, Any]:
        source = {
            "id": source_id,
            "type": "sources",
            "attributes": {
                "name": name,
                "enabled": enabled,
                "deployment": {**DEFAULTS, **copy.deepcopy(deployment)},
            },
        }
        self._deploy(source)
        return source

    def _deploy(self, source: dict[str, Any]) -> None:
        attributes = source["attributes"]
        attributes["deployment_status"] = "deploying"
        attributes["date_deployed"] = int(self.account.clock())
        attributes["_deployed_at"] = self.account.clock() + self.deploy_seconds

    def _visible(self, source: dict[str, Any], read: bool = True) -> dict[str, Any]:
        """A Source as the API shows it: secrets are never sent back. A read shows a
        finished deploy; the answer to the create or update itself shows "deploying", as
        the reference's create example does."""
        with self.account.lock:
            attributes = source["attributes"]
            if (
                read
                and attributes["deployment_status"] == "deploying"
                and self.account.clock() >= attributes["_deployed_at"]
            ):
                attributes["deployment_status"] = "deployed"
            shown = copy.deepcopy(source)
        shown["attributes"].pop("_deployed_at", None)
        for name in SECRETS:
            shown["attributes"]["deployment"].pop(name, None)
        if not shown["attributes"]["enabled"]:
            shown["attributes"]["deployment_status"] = "disabled"
        return dict(shown)

    def _taken(self, deployment: dict[str, Any], own_id: str | None) -> list[str]:
        """ "Domains must be unique across all Sources" (imgix_subdomains, custom domains)."""
        with self.account.lock:
            others = [
                s["attributes"]["deployment"]
                for sid, s in self.account.sources.items()
                if sid != own_id
            ]
        used = {sub for d in others for sub in d.get("imgix_subdomains", [])}
        used_custom = {c for d in others for c in d.get("custom_domains") or []}
        clashes = [s for s in deployment.get("imgix_subdomains") or [] if s in used]
        clashes += [c for c in deployment.get("custom_domains") or [] if c in used_custom]
        return [f"{c!r} is already used by another Source" for c in clashes]


def validate_deployment(deployment: dict[str, Any]) -> list[str]:
    """Every documented rule a deployment breaks (an empty list when it is valid)."""
    problems = []
    kind = deployment.get("type")
    if kind not in TYPES:
        problems.append(f"type {kind!r} is not a Source type ({', '.join(TYPES)})")
    for name in REQUIRED.get(str(kind), ()):
        if not deployment.get(name):
            problems.append(f"{name} is required for {kind} Sources")
    subdomains = deployment.get("imgix_subdomains")
    if not isinstance(subdomains, list) or not subdomains:
        problems.append("imgix_subdomains needs at least one subdomain")
    elif not all(isinstance(s, str) and SUBDOMAIN.match(s) for s in subdomains):
        problems.append("imgix_subdomains takes subdomains only, e.g. ['foo']")
    custom = deployment.get("custom_domains", [])
    if not isinstance(custom, list) or not all(isinstance(c, str) and "." in c for c in custom):
        problems.append("custom_domains must be a list of domains")
    ttl = deployment.get("cache_ttl_value", DEFAULTS["cache_ttl_value"])
    if not _whole(ttl) or not 1800 <= ttl <= 31536000:
        problems.append("cache_ttl_value must be between 1800 and 31536000")
    ttl_error = deployment.get("cache_ttl_error", DEFAULTS["cache_ttl_error"])
    if not _whole(ttl_error) or not 1 <= ttl_error <= 31536000:
        problems.append("cache_ttl_error must be between 1 and 31536000")
    for name, allowed in ENUMS.items():
        if name in deployment and deployment[name] is not None:
            values = allowed
            if name == "robots.txt" and kind == "webproxy":
                values = ("allow-all", "disallow-all")
            if deployment[name] not in values:
                problems.append(f"{name} must be one of {', '.join(values)}")
    return problems


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _resource(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict) or data.get("type") != "sources":
        raise ApiError(400, "Bad Request", "body must be {data: {type: 'sources', ...}}")
    return data


def _field(source: dict[str, Any], name: str) -> Any:
    value: Any = source["attributes"]
    for part in name.split(".", 1) if name.startswith("deployment.") else [name]:
        value = value.get(part) if isinstance(value, dict) else None
    return value if value is not None else ""
