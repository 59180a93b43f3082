"""imgix Sources and the mapping from an S3 (bucket, key) to each Source's origin path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from imgix_autoadder.imgix.paths import encode_origin_path


class SourceError(ValueError):
    """A configured Source cannot serve this bucket (wrong type, missing bucket...)."""


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    type: str
    bucket: str
    prefix: str  # without leading/trailing '/', '' for the bucket root
    subdomains: tuple[str, ...]
    allows_upload: bool
    enabled: bool
    custom_domains: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Source:
        attributes = data.get("attributes") or {}
        deployment = attributes.get("deployment") or {}
        return cls(
            id=str(data["id"]),
            name=str(attributes.get("name") or ""),
            type=str(deployment.get("type") or ""),
            bucket=str(deployment.get("s3_bucket") or ""),
            prefix=str(deployment.get("s3_prefix") or "").strip("/"),
            subdomains=tuple(deployment.get("imgix_subdomains") or ()),
            allows_upload=bool(deployment.get("allows_upload")),
            enabled=bool(attributes.get("enabled", True)),
            custom_domains=tuple(deployment.get("custom_domains") or ()),
        )

    def origin_path(self, bucket: str, key: str) -> str | None:
        """The path imgix serves this key under, or None when the key is not in this Source.

        imgix resolves <prefix>/<path> in the bucket, so the key must sit under the prefix.
        """
        if bucket != self.bucket:
            return None
        if not self.prefix:
            return key
        head = self.prefix + "/"
        return key[len(head) :] if key.startswith(head) and len(key) > len(head) else None

    def object_key(self, origin_path: str) -> str:
        return f"{self.prefix}/{origin_path}" if self.prefix else origin_path

    def urls(self, origin_path: str) -> list[str]:
        """Every imgix URL that serves this asset, one per domain of the Source: each
        <subdomain>.imgix.net and each custom domain (all need purging)."""
        domains = [f"{sub}.imgix.net" for sub in self.subdomains] + list(self.custom_domains)
        return [f"https://{domain}/{encode_origin_path(origin_path)}" for domain in domains]


class SourceReader(Protocol):
    def get_source(self, source_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Target:
    source: Source
    origin_path: str


class SourceMap:
    """The configured Sources, fetched once at cold start."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self.sources = tuple(sources)

    @classmethod
    def load(cls, client: SourceReader, source_ids: Iterable[str]) -> SourceMap:
        sources = [Source.from_api(client.get_source(sid)) for sid in source_ids]
        problems = [
            f"Source {s.id} ({s.name}) is of type {s.type!r}, not 's3'"
            for s in sources
            if s.type != "s3"
        ]
        problems += [f"Source {s.id} ({s.name}) has no s3_bucket" for s in sources if not s.bucket]
        if problems:
            raise SourceError("; ".join(problems))
        return cls(sources)

    def targets(self, bucket: str, key: str) -> list[Target]:
        """Every Source that serves this key (two Sources may share a bucket)."""
        found = []
        for source in self.sources:
            path = source.origin_path(bucket, key)
            if path is not None:
                found.append(Target(source, path))
        return found

    def by_id(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)
