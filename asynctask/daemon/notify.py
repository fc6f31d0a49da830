"""Readiness for a service manager: systemd's ``sd_notify`` protocol, written by hand.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` and counts the service started when it
receives ``READY=1``; ``STOPPING=1`` says a stop has begun, ``STATUS=...`` is the line
``systemctl status`` shows, and ``EXTEND_TIMEOUT_USEC=`` asks for more time than
``TimeoutStopSec`` when a stop's drain is longer. The protocol is one datagram per message of
``KEY=VALUE`` lines on a Unix datagram socket whose path is the variable's value, ``@`` at its
start naming an abstract address (a NUL byte on the wire). That is about twenty lines, so no
library: ``systemd-python`` needs libsystemd's headers and a compiler to install, and
``sdnotify`` would be one more dependency for a ``sendto`` call. What this does not do:
``vsock:`` addresses (systemd 254's for virtual machines) and passing descriptors
(``FDSTORE=1``); a ``vsock:`` value is logged once and ignored.

The variable is read once and removed from the environment (as ``sd_notify(unset_environment=
1)`` does), so nothing the daemon starts (workers, the isolation probe's interpreters, a
PostgreSQL helper) can send a message in its name. Sending never raises: a daemon must not
stop because its supervisor went away, so a failed send is logged at debug level.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Final

log = logging.getLogger("asynctask.daemon")

ENV: Final = "NOTIFY_SOCKET"
#: Seconds a stop may take beyond its drain (store flush, workers killed), asked of systemd
#: with ``EXTEND_TIMEOUT_USEC``; ``asynctask stop`` waits as long (``cli/daemon.py``).
STOP_GRACE: Final = 30.0


class Notifier:
    """Sends ``sd_notify`` messages to the socket ``NOTIFY_SOCKET`` named at start-up; does
    nothing when it was unset (not under systemd, or a ``Type=`` other than ``notify``)."""

    def __init__(self, address: str | bytes | None) -> None:
        self._address = address
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier of ``$NOTIFY_SOCKET``, which is removed from the environment."""
        value = os.environ.pop(ENV, "")
        return cls(address_of(value))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def __repr__(self) -> str:
        return f"<Notifier {self._address!r}>"

    def notify(self, **fields: str | int) -> bool:
        """Send one message (``notify(READY=1, STATUS="serving")``); whether it was sent."""
        if self._address is None:
            return False
        message = "\n".join(f"{key}={_one_line(str(value))}" for key, value in fields.items())
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def address_of(value: str) -> str | bytes | None:
    """The socket address ``$NOTIFY_SOCKET`` names: a path, an abstract name (``@name``, sent
    as ``\\0name``), or None when unset or of a kind not supported (``vsock:``)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is not a Unix socket address; no readiness is sent", value)
    return None


def _one_line(text: str) -> str:
    """A value fits on its line: a newline would start another (forged) field."""
    return text.replace("\n", " ").replace("\r", " ")
