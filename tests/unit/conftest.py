"""The unit tier stays pure: a test here that opens a connection (moto's server, the
emulator, AWS) fails at once instead of quietly becoming an integration test."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a unit test opened a network connection: move it to integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture(autouse=True)
def no_moto(request: pytest.FixtureRequest) -> None:
    used = {"aws", "emulator", "stack", "client", "indexer", "invoke"} & set(request.fixturenames)
    assert not used, f"unit tests take no moto or emulator fixture: {sorted(used)}"
