"""A socket guard for tests: every attempt to resolve or connect to a non-loopback address is
recorded and refused (loopback and Unix sockets pass), so a test can show which commands touch the
network. In a subprocess, `fake_cli.py` installs it when TOPICTREE_TEST_NET_LOG names a file."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost"}


def is_local(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def install(record: Callable[[str], None]) -> Callable[[], None]:
    """Patch the socket module; returns a function that undoes it."""
    real = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.create_connection)

    def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
        def connect(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
                record(f"connect {address[0]}:{address[1]}")
                raise OSError(errno.ENETUNREACH, "network blocked by the test guard")
            return method(self, address)

        return connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local(host):
            record(f"resolve {host}")
            raise socket.gaierror(socket.EAI_NONAME, "network blocked by the test guard")
        return real[2](host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local(address[0]):
            record(f"connect {address[0]}:{address[1]}")
            raise OSError(errno.ENETUNREACH, "network blocked by the test guard")
        return real[3](address, *args, **kwargs)

    socket.socket.connect = guarded(real[0])  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded(real[1])  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket.create_connection = create_connection

    def undo() -> None:
        socket.socket.connect, socket.socket.connect_ex = real[0], real[1]  # type: ignore[method-assign]
        socket.getaddrinfo, socket.create_connection = real[2], real[3]

    return undo


def install_file_log(path: str) -> None:
    def record(line: str) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    install(record)
