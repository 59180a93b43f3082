"""The imgix API key: read from Secrets Manager, validated, re-read on demand after a rotation."""

from __future__ import annotations

import json
import threading
import unicodedata
from typing import Any

from imgix_autoadder.core.observability import redactor

SECRET_CACHE_S = 300


class ApiKeyError(Exception):
    """The secret holds no usable key. The message never contains the key or the secret."""


def validate_api_key(key: str, secret_id: str) -> str:
    """The key as it will travel in `Authorization: Bearer <key>`.

    Whitespace or a control character would make the header invalid, and requests would
    then raise an error whose text holds the whole header: refuse it here, by position only.
    """
    if not key:
        raise ApiKeyError(f"secret {secret_id!r} holds no imgix API key")
    for position, char in enumerate(key):
        if char.isspace() or unicodedata.category(char).startswith("C"):
            raise ApiKeyError(
                f"the imgix API key in secret {secret_id!r} has a whitespace or control "
                f"character at position {position} of {len(key)}; store the bare key"
            )
    return key


def parse_secret(raw: str, secret_id: str) -> str:
    """The secret may be the bare key or JSON with an "api_key" field."""
    if raw.lstrip().startswith("{"):
        try:
            document = json.loads(raw)
        except ValueError:
            document = None  # the decode error holds the secret: raise outside this block
        if document is None:
            raise ApiKeyError(f"secret {secret_id!r} starts with '{{' but is not JSON")
        if not isinstance(document, dict) or not isinstance(document.get("api_key"), str):
            raise ApiKeyError(f'secret {secret_id!r} is JSON without a string "api_key"')
        return validate_api_key(document["api_key"], secret_id)
    return validate_api_key(raw, secret_id)


class ApiKeySource:
    """Reads the key through Powertools Parameters (cached); `fresh=True` bypasses the cache,
    which is what a 401 after a key rotation calls for."""

    def __init__(self, secrets_provider: Any, secret_id: str, max_age_s: int = SECRET_CACHE_S):
        self._provider = secrets_provider
        self._secret_id = secret_id
        self._max_age_s = max_age_s
        self._lock = threading.Lock()

    def get(self, fresh: bool = False) -> str:
        with self._lock:
            try:
                raw = self._provider.get(
                    self._secret_id, max_age=self._max_age_s, force_fetch=fresh
                )
            except Exception as exc:
                # botocore's text names the secret and the error code, never the value.
                raise ApiKeyError(
                    f"could not read secret {self._secret_id!r}: {type(exc).__name__}: "
                    f"{str(exc)[:300]}"
                ) from None
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", errors="replace")
            key = parse_secret(str(raw), self._secret_id)
        redactor.register(key)
        return key


class StaticApiKey:
    """A key handed over directly (tests, the bench, `ops` commands with --api-key-file)."""

    def __init__(self, key: str) -> None:
        self._key = validate_api_key(key, "(given)")
        redactor.register(self._key)

    def get(self, fresh: bool = False) -> str:
        return self._key
