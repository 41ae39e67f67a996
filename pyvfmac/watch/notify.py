"""The systemd notify protocol: ``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ``STATUS=...``.

One datagram per notification to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``: a path, or
an abstract name written with a leading ``@`` (sent as a leading NUL). Without the variable every
call is a no-op (not run by systemd). ``RELOADING=1`` carries ``MONOTONIC_USEC`` as
``Type=notify-reload`` asks. A failed send is returned as an error text for the caller to log,
never raised: the daemon's work does not depend on its supervisor hearing about it.
(``vsock:`` addresses, used by VMs' systemd, are not supported; the notifier is then off.)
"""

from __future__ import annotations

import os
import socket
import time

ENV = "NOTIFY_SOCKET"


def socket_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` -> the address to send to (bytes for an abstract name); None when it is
    unset, empty or not an AF_UNIX address."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


class Notifier:
    def __init__(self, address: str | bytes | None = None, *, from_env: bool = True) -> None:
        if address is None and from_env:
            address = socket_address(os.environ.get(ENV, ""))
        self.address = address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> str | None:
        """Send ``KEY=VALUE`` lines in one datagram; None when sent (or disabled), else why not."""
        if self.address is None:
            return None
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            return f"cannot notify {self.address!r}: {exc.strerror or exc}"
        return None

    def ready(self, status: str = "") -> str | None:
        return self.send("READY=1", *self._status(status))

    def reloading(self, status: str = "") -> str | None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *self._status(status))

    def stopping(self, status: str = "") -> str | None:
        return self.send("STOPPING=1", *self._status(status))

    def status(self, status: str) -> str | None:
        return self.send(*self._status(status))

    @staticmethod
    def _status(text: str) -> list[str]:
        return [f"STATUS={' '.join(text.split())}"] if text else []

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
