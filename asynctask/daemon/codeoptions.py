"""The options each tenant's functions declare in code, learned from the workers that import them.

``@asynctask.task(retries=0, timeout="1s", queue=...)`` must hold however the task is submitted,
by the function object or by its ``"module:function"`` name (``Client.submit``, ``asynctask
submit``, cron). The daemon never imports user code (the trust boundary: task code runs only in
sandboxed workers, as its tenant's user), so it learns a function's options from the worker that
imports it: before a function's first attempt in a worker, the worker sends a ``declare`` frame
with the function's ``__asynctask_defaults__`` (``executor/child.py``).

What the daemon does with a report (``Engine.on_declare``):

* checks it as its tenant's input: the ``CodeDefaults`` wire schema, destinations the tenant may
  run (``[tenants.<t>] functions`` in multi-user mode); a report that fails is logged and
  dropped, nothing else happens;
* applies it to the attempt that is running, for each option neither its submit nor the config
  file set (those are named in ``options["fixed"]``): ``retries``, ``timeout`` (the pool
  re-arms the attempt's timer), ``on_success``, ``on_failure``;
* is read when an attempt of the function fails: ``retry_limit_kills`` (the function opted in
  to retrying limit kills; a killed worker cannot say so then, so its earlier report does);
* remembers it per (tenant, function), replacing the previous report (code changes reach the
  daemon with the next worker that imports them: ``asynctask reload``), and stores it so that it
  survives a restart. Later submits by name take queue, priority, ttl, retries, timeout,
  destinations and resource limits from it at admission (``core/admission.py``), and each
  dispatch of a task that left options to the code applies the newest report.

One tenant's report never reaches another tenant's tasks: the key is the tenant of the attempt
the worker runs (a worker serves one tenant for its life), never a name the report gives. A
tenant may have ``MAX_PER_TENANT`` functions remembered; past it, reports still apply to their
attempt but are not remembered. The function's own limits (``concurrency``, ``rate``, ``burst``)
are not taken from reports: they are shared by every tenant's tasks of that function name, so a
report, which only one tenant controls, must not set them (they travel with submits through the
function object, as before).

What the first by-name submit of a function no worker has reported yet gets: the submit's
options, then the config's, then the daemon's defaults (queue: the tenant's; priority 5). Its
first attempt then takes retries, timeout and destinations from the worker's report as it
starts; its queue, priority, ttl and resource limits are fixed by then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from asynctask.core.admission import code_options
from asynctask.core.allowlist import RunPolicy
from asynctask.errors import UsageError
from asynctask.model import LiveTask
from asynctask.protocol.requests import CodeDefaults, decode

log = logging.getLogger("asynctask.daemon")

#: Functions remembered per tenant: a tenant's code could name endless functions.
MAX_PER_TENANT: Final = 1_000

Key = tuple[str, str]


class CodeOptions:
    """The reports remembered, by (tenant, function); see the module docstring."""

    def __init__(
        self,
        policy: Callable[[], RunPolicy],
        on_change: Callable[[str, str, dict[str, Any] | None], None] | None = None,
    ) -> None:
        #: (tenant, function) -> the checked options (``CodeDefaults.to_dict`` form).
        self.known: dict[Key, dict[str, Any]] = {}
        self._counts: dict[str, int] = {}
        self._policy = policy
        self._on_change = on_change

    def __repr__(self) -> str:
        return f"<CodeOptions functions={len(self.known)} tenants={len(self._counts)}>"

    def load(self, rows: Mapping[Key, Mapping[str, Any]]) -> None:
        """The reports stored before a restart, checked again as a report is."""
        for (tenant, function), raw in rows.items():
            checked = self.check(tenant, function, raw)
            if checked is not None:
                self._remember(tenant, function, checked, store=False)

    def report(self, tenant: str, function: str, raw: Any) -> dict[str, Any] | None:
        """A worker's report for ``tenant``'s ``function``: the checked options (``{}``: the
        function declares none), remembered; ``None`` if it was refused."""
        checked = self.check(tenant, function, raw)
        if checked is not None:
            self._remember(tenant, function, checked, store=True)
        return checked

    def check(self, tenant: str, function: str, raw: Any) -> dict[str, Any] | None:
        try:
            options = decode(CodeDefaults, raw).to_dict() or {}
        except UsageError as exc:
            log.warning(  # names are checked names; the refusal may quote the report: repr
                "ignored the options %s declares for tenant %s: %r",
                function, tenant, exc.message,
                extra={"event": "code_options_refused", "tenant": tenant, "function": function},
            )  # fmt: skip
            return None
        policy = self._policy()
        for name in ("on_success", "on_failure"):
            target = options.get(name)
            refusal = None if target is None else policy.refusal(tenant, target)
            if refusal is not None:
                log.warning(
                    "ignored %s of %s for tenant %s: %r",
                    name, function, tenant, refusal,
                    extra={"event": "code_options_refused", "tenant": tenant,
                           "function": function},
                )  # fmt: skip
                del options[name]
        return options

    def _remember(self, tenant: str, function: str, options: dict[str, Any], store: bool) -> None:
        key = (tenant, function)
        previous = self.known.get(key)
        if previous == options:
            return
        if not options:
            if previous is not None:
                del self.known[key]
                self._counts[tenant] -= 1
                if store and self._on_change is not None:
                    self._on_change(tenant, function, None)
            return
        if previous is None:
            if self._counts.get(tenant, 0) >= MAX_PER_TENANT:
                return
            self._counts[tenant] = self._counts.get(tenant, 0) + 1
        self.known[key] = options
        if store and self._on_change is not None:
            self._on_change(tenant, function, options)

    def apply(self, task: LiveTask, code: Mapping[str, Any] | None = None) -> bool:
        """Give ``task`` (running, or about to) the options its code sets that its submit and
        the config left to the code: ``code``, else the remembered report. Whether that
        changed its options."""
        if code is None:
            code = self.known.get((task.tenant, task.function))
            if code is None:
                return False
        options = code_options(task.options, code)
        if options == task.options:
            return False
        task.options = options
        task.retries = int(options.get("retries", task.retries))
        task.timeout = options.get("timeout", task.timeout)
        return True
