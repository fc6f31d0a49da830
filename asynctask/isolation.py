"""Which worker isolation this daemon gives, decided once at start-up by trying it.

The sandbox itself is ``executor/sandbox.py``; this module chooses its mode and says so in the
start-up log line (``isolation: ...``). The choice is made by doing, not by guessing from the
kernel version or the uid:

1. **The namespaces probe.** ``[workers] python -m asynctask.executor.sandbox`` enters the very
   sandbox a worker would (home hidden, pid and mount namespaces, capabilities dropped) and
   reports its capabilities. When it fails (no namespaces for this user, no user namespaces for
   a non-root daemon), workers get what is left - no capabilities and ``no_new_privs``, and
   Landlock where the kernel has it (``executor/landlock.py``; with ABI 6 the same outcomes
   but for path sockets) - probed the same way. Without Landlock the daemon logs a warning
   that tasks can reach what its uid owns. Never silently less.
2. **The per-tenant uid probe** (root only). ``[workers] python -c "import
   asynctask.executor.child"`` run as the first uid of ``[workers] uids``, with the workers'
   ``sys.path`` and working directory. It fails where that uid cannot run the interpreter or read
   the code (pyenv under a 0700 ``/root``, say). In multi-user mode (``[auth.users]``) that
   refuses the start (``UsageError``, exit 2, saying what to fix); in single-user mode the daemon
   falls back to (1) and says why.

Per-tenant uids (``UidAllocator``) are allocated from the range the first time a tenant's
worker needs one and stored (``tenant_uids``, schema 8), so a tenant keeps its uid across
restarts and the files it leaves in ``/tmp`` stay its own. A uid that is in ``/etc/passwd``,
root, or the daemon's own uid is never handed out.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import subprocess
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

from asynctask.errors import UsageError
from asynctask.executor.sandbox import SANDBOX_ENV, Spec

log = logging.getLogger("asynctask.isolation")

DEFAULT_UIDS: Final = (61000, 61999)
PROBE_TIMEOUT: Final = 20.0
#: Where the ``asynctask`` package lives; workers import it from there (``executor/pool.py``).
PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[1])

Mode = Literal["uids", "capabilities", "landlock", "minimal"]


class UidAllocator:
    """Per-tenant uids from a range: stable once given (``known`` comes from the store), never
    root, the daemon's uid or an account's uid (``taken``); ``fixed`` are the tenants'
    configured users (``[tenants.<t>] user``), which win. Pure: the caller stores what
    ``allocate`` says is new."""

    def __init__(
        self,
        uids: tuple[int, int],
        known: Mapping[str, int] = {},
        taken: Iterable[int] = (),
        fixed: Mapping[str, int] = {},
    ) -> None:
        self.range = uids
        self._fixed = dict(fixed)
        self._by_tenant = dict(known)
        self._used = set(self._by_tenant.values())
        self._taken = {0, os.getuid(), *taken, *self._fixed.values()}

    def __repr__(self) -> str:
        low, high = self.range
        return f"<UidAllocator {low}-{high} assigned={len(self._by_tenant)}>"

    def allocate(self, tenant: str) -> tuple[int, bool]:
        """The tenant's uid and whether it is new (to be stored); ``RuntimeError`` when the
        range is used up."""
        if tenant in self._fixed:
            return self._fixed[tenant], False
        known = self._by_tenant.get(tenant)
        if known is not None:
            return known, False
        low, high = self.range
        for uid in range(low, high + 1):
            if uid not in self._used and uid not in self._taken:
                self._by_tenant[tenant] = uid
                self._used.add(uid)
                return uid, True
        raise RuntimeError(f"no free uid left in [workers] uids {low}-{high} for {tenant!r}")


def account_uids() -> set[int]:
    """Uids that belong to accounts: never given to a tenant."""
    return {entry.pw_uid for entry in pwd.getpwall()}


@dataclass(frozen=True, slots=True)
class Isolation:
    """The mode in force and the spec each worker gets (``spec_for`` is the pool's
    ``PoolConfig.sandbox``)."""

    mode: Mode
    description: str
    base: Spec
    allocator: UidAllocator | None = field(default=None, compare=False)
    #: Called with (tenant, uid) for a uid given for the first time: the daemon stores it.
    record: Callable[[str, int], object] | None = field(default=None, compare=False)

    def spec_for(self, tenant: str | None) -> str:
        """The worker's ``ASYNCTASK_SANDBOX``. In uid mode a worker bound to a tenant runs as
        the tenant's uid (allocated now if it has none); one not bound to a tenant (pre-started
        before the pool binds workers to tenants) runs as in capability mode."""
        if self.mode == "uids" and tenant is not None and self.allocator is not None:
            uid, new = self.allocator.allocate(tenant)
            if new and self.record is not None:
                self.record(tenant, uid)
            return replace(self.base, uid=uid, gid=_primary_gid(uid)).to_json()
        return self.base.to_json()

    def with_record(self, record: Callable[[str, int], object]) -> Isolation:
        return replace(self, record=record)


def _primary_gid(uid: int) -> int:
    """An account's own group; a uid of the range has no account, and gets the same gid."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    detail: str
    landlock: int = 0  # the Landlock ABI the probe's sandbox used (without namespaces only)


def worker_env(paths: Iterable[str], package_root: str) -> dict[str, str]:
    python_path = [package_root, *paths]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
    }


def probe_namespaces(python: str, cwd: str, env: Mapping[str, str], spec: Spec) -> Probe:
    """Enter the worker sandbox in a throwaway process; ok when it ran without capabilities."""
    try:
        done = subprocess.run(
            [python, "-m", "asynctask.executor.sandbox"],
            cwd=cwd,
            env={**env, SANDBOX_ENV: spec.to_json()},
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Probe(False, str(exc))
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (lines[-1] if lines else "") or done.stderr.strip().splitlines()[-1:]
        return Probe(False, str(reason) or f"exit status {done.returncode}")
    try:
        seen = json.loads(lines[-1])
    except ValueError:
        return Probe(False, f"unexpected probe output {lines[-1]!r}")
    if seen.get("caps") != 0:
        return Probe(False, f"capabilities left in the sandbox: {seen.get('caps')!r}")
    landlock = seen.get("landlock")
    return Probe(True, "", landlock if type(landlock) is int else 0)


def probe_uid(python: str, cwd: str, env: Mapping[str, str], uid: int) -> Probe:
    """Can ``uid`` run the workers' interpreter and import the worker from their paths?"""
    if os.geteuid() != 0:
        return Probe(False, "the daemon is not root")
    try:
        done = subprocess.run(
            [python, "-c", "import asynctask.executor.child"],
            cwd=cwd,
            env=dict(env),
            user=uid,
            group=uid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except PermissionError:
        return Probe(False, f"{os.path.realpath(python)} is not executable by uid {uid}")
    except (OSError, subprocess.SubprocessError) as exc:
        return Probe(False, f"{python} cannot be run as uid {uid}: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Probe(False, f"{python} as uid {uid} cannot import the worker: {last}")
    return Probe(True, "")


def choose(
    *,
    python: str,
    cwd: str,
    paths: Iterable[str],
    home: str,
    socket: str,
    uids: tuple[int, int] = DEFAULT_UIDS,
    multi_user: bool = False,
    known_uids: Mapping[str, int] = {},
    tenant_users: Mapping[str, int] = {},
) -> Isolation:
    """Probe and choose (see the module docstring); ``UsageError`` in multi-user mode when the
    per-tenant uids cannot run the workers, or when a tenant's user is the daemon's."""
    for tenant, uid in tenant_users.items():
        if uid in (0, os.getuid()):
            raise UsageError(
                f"[tenants.{tenant}] user is uid {uid}, the daemon's own or root: tasks must "
                "not run with the daemon's authority; name another user or leave it unset"
            )
    env = worker_env(paths, PACKAGE_ROOT)
    base = Spec(hide=(home,), socket=socket)
    with ThreadPoolExecutor(2, thread_name_prefix="asynctask-probe") as probes:
        both = probes.submit(probe_namespaces, python, cwd, env, base)
        uid_probe = probe_uid(python, cwd, env, uids[0])  # meanwhile: two interpreter starts
        namespaces = both.result()
    low, high = uids
    if multi_user and not (uid_probe.ok and namespaces.ok):
        why = uid_probe.detail if not uid_probe.ok else f"no namespaces: {namespaces.detail}"
        raise UsageError(
            f"multi-user mode ([auth.users]) runs each tenant's workers as a uid of its own from "
            f"[workers] uids {low}-{high}, but {why}. Set [workers] python to an interpreter "
            "(and [workers] paths to task code) that other users can read and run, e.g. a venv "
            "made with /usr/bin/python3 -m venv outside /root"
        )
    if uid_probe.ok and namespaces.ok:
        allocator = UidAllocator(uids, known_uids, account_uids(), tenant_users)
        text = f"per-tenant uids {low}-{high}, own pid+mount namespace, no_new_privs"
        return Isolation("uids", text, base, allocator)
    if namespaces.ok:
        text = "daemon uid without capabilities, own pid+mount namespace, no_new_privs"
        return Isolation("capabilities", f"{text} (per-tenant uids unavailable: "
                         f"{uid_probe.detail})", base)  # fmt: skip
    minimal = replace(base, namespaces=False)
    fallback = probe_namespaces(python, cwd, env, minimal)
    if not fallback.ok:
        raise UsageError(f"workers cannot even drop their capabilities: {fallback.detail}")
    if fallback.landlock >= 6:
        text = (
            f"daemon uid without capabilities, no_new_privs and Landlock ABI {fallback.landlock}"
            f" (no pid or mount namespace: {namespaces.detail}): the home unreadable, the system "
            "read-only, the daemon and other workers out of reach; path Unix sockets stay "
            "reachable even with network = false"
        )
        return Isolation("landlock", text, minimal)
    landlock = f"Landlock ABI {fallback.landlock}" if fallback.landlock else "no Landlock"
    text = (
        f"daemon uid without capabilities and no_new_privs only ({landlock}; no pid or mount "
        f"namespace: {namespaces.detail}), so tasks can reach much of what the daemon's uid "
        "owns, and signal the daemon"
    )
    return Isolation("minimal", text, minimal)
