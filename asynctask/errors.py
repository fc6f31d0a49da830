"""The error tree: every error says whose fault it is and what to do about it.

Two families live here:

* ``AsynctaskError`` and its subclasses travel between the daemon and its clients. Each has a
  wire ``code`` (the daemon sends ``{"code", "message", ...}``; the client rebuilds the same class
  with ``from_wire``) and the CLI ``exit_code`` (docs/contract.md, "Exit codes").
* ``Fail`` and ``Throttled`` are raised by *task code* inside a worker to steer the retry policy.
  They are not ``AsynctaskError``s: they never cross the socket as exceptions, only as the
  ``kind`` of an attempt's error.
"""

from __future__ import annotations

from typing import Any, ClassVar

EXIT_OK = 0
EXIT_TASK_NOT_SUCCEEDED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3
EXIT_WAIT_TIMEOUT = 4
#: The daemon's own exit code after a storage I/O error (EX_TEMPFAIL): start it again.
EXIT_STORAGE_LOST = 75


class AsynctaskError(Exception):
    """Root of the errors that the daemon, the client and the CLI raise."""

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @staticmethod
    def from_wire(payload: Any) -> AsynctaskError:
        """Rebuild the error the daemon sent; unknown codes become a plain ``RemoteError``."""
        if not isinstance(payload, dict):
            return RemoteError(f"malformed error from daemon: {payload!r}")
        code = payload.get("code")
        message = str(payload.get("message", "unknown error"))
        if code == SubmitThrottled.code:
            retry_after = payload.get("retry_after")
            return SubmitThrottled(message, float(retry_after) if retry_after is not None else None)
        cls = _BY_CODE.get(str(code), RemoteError)
        return cls(message)


class UsageError(AsynctaskError):
    """The caller asked for something invalid (bad option, bad duration, bad selector).

    Raised by the CLI and the client before sending, and by the daemon when it refuses a request.
    Nothing was changed; fix the request and send it again.
    """

    code = "usage"


class ConfigError(UsageError):
    """The configuration file has an unknown key or a bad value; the daemon refuses to start."""

    code = "config"


class ProtocolError(AsynctaskError):
    """A frame on the socket broke the wire protocol (bad length, not msgpack, not a map).

    Raised by ``protocol.FrameDecoder``. The connection cannot be trusted after it, so the side
    that detects it answers with this error and closes the connection.
    """

    code = "protocol"


class NotFound(AsynctaskError):
    """No task with that ID is visible to the caller (unknown, or another tenant's)."""

    code = "not_found"


class Unauthorized(AsynctaskError):
    """The caller's user may not act for the tenant it named (``[auth.users]``)."""

    code = "unauthorized"


class SubmitThrottled(AsynctaskError):
    """Back pressure: the tenant's backlog is full. Retry after ``retry_after`` seconds."""

    code = "throttled"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), "retry_after": self.retry_after}


class ShuttingDown(AsynctaskError):
    """The daemon is draining for shutdown and accepts no new work; retry once it is back."""

    code = "shutting_down"
    exit_code = EXIT_NO_DAEMON


class TooManyConnections(AsynctaskError):
    """The caller's user already has ``[server] max_connections_per_user`` connections open to
    the daemon (a task's connections count per tenant). Close some, or raise the cap."""

    code = "too_many_connections"
    exit_code = EXIT_NO_DAEMON


class StorageError(AsynctaskError):
    """The daemon could not store the request (disk full, I/O error, read-only database).

    Nothing of the request was acknowledged. After a disk-full or permission error nothing of
    it was stored either; after an I/O error during a commit its fate is unknown (the message
    says so), and the daemon restarts itself from what is on disk. Reads keep working, and the
    daemon resumes storing, without a restart, once the disk recovers: retry later.
    """

    code = "storage"


class DaemonUnavailable(AsynctaskError):
    """No daemon answers on the socket (not started, wrong ``--home``/``--socket``, or died)."""

    code = "unavailable"
    exit_code = EXIT_NO_DAEMON


class RemoteError(AsynctaskError):
    """The daemon reported an error this client does not know; the message says what."""

    code = "remote"


class WaitTimeout(AsynctaskError):
    """``wait``/``result`` gave up before the task ended; the task itself goes on."""

    code = "wait_timeout"
    exit_code = EXIT_WAIT_TIMEOUT


class TaskNotSucceeded(AsynctaskError):
    """``result()`` of a task that ended ``failed``, ``cancelled`` or ``expired``.

    ``task`` holds the finished task's status, including its ``error``.
    """

    code = "task_not_succeeded"
    exit_code = EXIT_TASK_NOT_SUCCEEDED

    def __init__(self, message: str, task: Any = None) -> None:
        super().__init__(message)
        self.task = task


_BY_CODE: dict[str, type[AsynctaskError]] = {
    cls.code: cls
    for cls in (
        UsageError,
        ConfigError,
        ProtocolError,
        NotFound,
        Unauthorized,
        ShuttingDown,
        TooManyConnections,
        StorageError,
        DaemonUnavailable,
        WaitTimeout,
    )
}


class Fail(Exception):
    """Raised by task code: this task cannot succeed, do not retry it (it ends ``failed``)."""


class Throttled(Exception):
    """Raised by task code: a downstream is overloaded. Retried with backoff; slows dispatch.

    ``retry_after`` (seconds) is a hint for the earliest next attempt.
    """

    def __init__(self, message: str = "throttled", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
