"""Shared fixtures: a fresh sandbox per test, an Admin API client pointed at it, and no internet.

Tests must never reach Google: `_no_network` (autouse) lets sockets connect only to loopback
addresses and refuses DNS lookups of anything but localhost, so a forgotten `api_endpoint`
fails loudly instead of calling the real API.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from google.analytics.admin_v1beta import AnalyticsAdminServiceClient
from google.auth.credentials import AnonymousCredentials

from ga_sync.sandbox.server import SandboxServer
from ga_sync.sandbox.state import SandboxState

_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-local host."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("GA_SYNC_RECORD") == "live":  # re-recording cassettes against real GA
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise NetworkBlocked(f"tests must not use the network (tried {address!r})")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local(host):
            raise NetworkBlocked(f"tests must not resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def _own_quota_ledger(tmp_path_factory: pytest.TempPathFactory,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets a quota ledger of its own (subprocesses inherit it): no test waits for
    quota another test spent, and none writes to the user's data folder."""
    folder = tmp_path_factory.mktemp("ledger")
    monkeypatch.setenv("GA_SYNC_QUOTA_LEDGER", str(folder / "quota-ledger.json"))


@pytest.fixture
def sandbox_state() -> SandboxState:
    """A fresh, in-memory sandbox state with no accounts or properties."""
    return SandboxState()


@pytest.fixture
def sandbox(sandbox_state: SandboxState) -> Iterator[SandboxServer]:
    """A started sandbox server on a free port, serving `sandbox_state`; stopped afterwards."""
    server = SandboxServer(sandbox_state).start()
    try:
        yield server
    finally:
        server.stop()


def make_admin_client(url: str) -> AnalyticsAdminServiceClient:
    """An official Admin API client (REST transport, no credentials) talking to `url`."""
    return AnalyticsAdminServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options={"api_endpoint": url})


@pytest.fixture
def admin_client(sandbox: SandboxServer) -> AnalyticsAdminServiceClient:
    """The official Admin API client pointed at `sandbox`."""
    return make_admin_client(sandbox.url)


@pytest.fixture
def ga_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """Point ga-sync (both APIs, no credentials) at the `sandbox` for this test."""
    monkeypatch.setenv("GA_SYNC_ADMIN_ENDPOINT", sandbox.url)
    monkeypatch.setenv("GA_SYNC_DATA_ENDPOINT", sandbox.url)
    monkeypatch.setenv("GA_SYNC_CREDENTIALS", "anonymous")
    return sandbox
