"""Logger and Metrics shared by every function, with secrets scrubbed from all output."""

from __future__ import annotations

import sys
import threading

from aws_lambda_powertools import Logger, Metrics

REDACTED = "***REDACTED***"


class RedactingStream:
    """A text stream that replaces every registered secret before it reaches stdout.

    Scrubbing the final text (not log records) also covers formatted tracebacks and
    any field a caller passes in `extra`.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, secret: str) -> None:
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def write(self, text: str) -> int:
        # Looked up at write time so that test capture and Lambda's stdout both work.
        return sys.stdout.write(self.scrub(text))

    def flush(self) -> None:
        sys.stdout.flush()


redactor = RedactingStream()


def make_logger(service: str = "imgix-autoadder") -> Logger:
    return Logger(service=service, stream=redactor)  # type: ignore[arg-type]


def make_metrics() -> Metrics:
    return Metrics(namespace="ImgixAutoadder")
