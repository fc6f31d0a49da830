"""The web console's routes: who is asking (the session cookie), whether an action is theirs
(the CSRF token and the request's origin), then the same ``Ops`` call a CLI request makes.

Routes (GET unless said): ``/login`` (GET, POST), ``/logout`` (POST), ``/`` the overview,
``/tasks`` the list (``asynctask list``'s filters, paged by cursor), ``/task?tenant=&id=`` one
task, ``/failures`` the dead letters grouped by function and error type, ``/cron`` the cron
entries, ``/nodes`` the daemons sharing the store, ``/tasks/bulk?action=`` a bulk action's
confirmation, ``/events`` the live updates (server-sent events), ``/static/<file>``;
actions (POST, CSRF token required): ``/task/cancel``, ``/task/retry``, ``/task/delete``,
``/queue/pause``, ``/queue/resume``, ``/tasks/bulk`` (an action on every task of a filter).

Unless ``[web] allow_remote``, a request must name a loopback ``Host`` (DNS rebinding).

Sessions: the login token (``tokens.py``) is the cookie, ``HttpOnly`` and ``SameSite=Strict``
(not ``Secure``: the console speaks plain HTTP on loopback; docs/web-console.md says to put a
TLS proxy in front of a remote one). A POST must carry the session's CSRF token and, when the
browser sends them, an ``Origin`` of this console and a ``Sec-Fetch-Site`` that is not another
site; otherwise it is refused with 403 and nothing changes.

"Not found": a task of a tenant the caller may not see is answered exactly as an unknown ID
(404, the daemon's own words), so the console cannot be used to learn that an ID exists.
"""

from __future__ import annotations

import ipaddress
import logging
import pwd
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from importlib import resources
from typing import Any, Final
from urllib.parse import urlencode

from asynctask.core.cron import slot_id
from asynctask.errors import AsynctaskError, NotFound, StorageError, Unauthorized
from asynctask.model import parse_duration, parse_time
from asynctask.protocol.checks import MAX_LIST_LIMIT
from asynctask.server.auth import AuthPolicy, Principal
from asynctask.server.connection import Reply
from asynctask.server.http import ensure_token
from asynctask.web import pages, tokens
from asynctask.web.httpserver import HttpServer, Request, Response, Stream, text_response
from asynctask.web.live import Live

log = logging.getLogger(__name__)

#: The signing secret's file in the home (``server.http.ensure_token``: 0600, kept).
WEB_SECRET: Final = "web.secret"
#: The session cookie's name.
COOKIE: Final = "asynctask_session"
#: Tasks per page of the list, and the failed tasks the Failures page groups.
PAGE_SIZE: Final = 50
FAILURES_READ: Final = 500
#: Files under ``/static/`` and their types; nothing else is served from the package.
STATIC: Final = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
#: The states each bulk action applies to (the daemon's own selector refuses others): a
#: filter's states are narrowed to these, and with no state filter these are the selection.
BULK_STATES: Final[dict[str, tuple[str, ...]]] = {
    "cancel": ("scheduled", "queued", "running"),
    "retry": ("failed",),
    "delete": ("succeeded", "failed", "cancelled", "expired"),
    "pause": ("scheduled", "queued"),
    "resume": ("scheduled", "queued"),
}
#: A bulk action's confirmation counts at most this many matching tasks (one ``list`` page of
#: ``MAX_LIST_LIMIT``: a bigger count would read every row again for a number); past it the
#: page says "at least".
BULK_COUNTED: Final = MAX_LIST_LIMIT
#: Tasks whose arguments' text is kept for their pages and live views (the oldest goes).
ARGS_KEPT: Final = 256
#: What a finished action says on the page it leads to (by code: no text from the URL).
NOTICES: Final = {
    "cancelled": "Cancelled.",
    "retried": "Queued again for a retry.",
    "deleted": "Deleted.",
    "paused": "Queue paused.",
    "resumed": "Queue resumed.",
    "nothing": "Nothing changed: the task was no longer in a state this action applies to.",
}
#: What a bulk action says, with the number the daemon reported.
BULK_NOTICES: Final = {
    "cancel": "Cancelled {n:,} task(s).",
    "retry": "Queued {n:,} task(s) again for a retry.",
    "delete": "Deleted {n:,} task(s).",
    "pause": "Paused {n:,} task(s).",
    "resume": "Resumed {n:,} task(s).",
}

OpsCall = Callable[[Principal, str, dict[str, Any]], Reply]
#: A task's submitted arguments (msgpack), read once ``status`` has authorized the caller.
PayloadOf = Callable[[str, str], Awaitable[bytes | None]]


class WebConsole:
    """The console on ``host:port``, calling ``ops`` as each session's principal; ``secret_file``
    holds the signing secret (made 0600 if missing); ``clock`` gives epoch seconds."""

    def __init__(
        self,
        host: str,
        port: int,
        ops: OpsCall,
        auth: AuthPolicy,
        secret_file: str,
        token_ttl: float,
        clock: Callable[[], float] = time.time,
        *,
        payload_of: PayloadOf | None = None,
        any_host: bool = False,
    ) -> None:
        self._ops = ops
        self._any_host = any_host
        self._payload_of = payload_of
        self._auth = auth
        self._secret_file = secret_file
        self._ttl = token_ttl
        self._clock = clock
        self._secret = b""
        self._static: dict[str, bytes] = {}
        self._names: dict[int, str] = {}
        self._server = HttpServer(host, port, self.handle)
        #: Stands for the CSRF token in a view rendered once for many consoles; each stream
        #: puts its own session's token in its place (unguessable, so no task text has it).
        self._slot = secrets.token_hex(16)
        self._representative: dict[Hashable, Principal] = {}
        self._args: dict[tuple[str, str, object], str | None] = {}
        self.live = Live(self._render_view)

    def __repr__(self) -> str:
        return f"<WebConsole {self._server!r}>"

    async def start(self) -> None:
        self._secret = ensure_token(self._secret_file).encode()
        folder = resources.files("asynctask.web") / "static"
        self._static = {name: (folder / name).read_bytes() for name in STATIC}
        await self._server.start()

    async def close(self) -> None:
        await self.live.close()
        await self._server.close()

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def issue(self, uid: int) -> dict[str, Any]:
        """A login token for ``uid`` (the ``web_token`` op: ``asynctask web-token``). The link
        carries it after ``#``, which browsers never send: ``console.js`` posts it to /login."""
        token, expires = tokens.issue(self._secret, uid, self._clock(), self._ttl)
        return {
            "token": token,
            "expires_at": expires,
            "url": self.url,
            "login_url": f"{self.url}/login#{token}",
        }

    # -- routing --------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | Stream:
        if not self._any_host and not self._loopback_host(request.headers.get("host", "")):
            return text_response(400, "this console answers only to a loopback Host")
        path = request.path
        if path.startswith("/static/"):
            return self._static_file(path.removeprefix("/static/"))
        if path == "/login":
            return self._login(request)
        session = request.cookie(COOKIE) or ""
        login = tokens.verify(self._secret, session, self._clock()) if session else None
        if login is None:
            message = "Your session has expired or is not valid: log in again." if session else ""
            if request.method == "POST":
                return text_response(401, "log in first (asynctask web-token)")
            return _html(401, pages.login_page(message))
        who = Principal(uid=login.uid)
        csrf = tokens.csrf_of(self._secret, session)
        if request.method == "POST":
            refusal = self._refusal(request, session)
            if refusal is not None:
                return text_response(403, refusal)
            return await self._act(request, who, csrf)
        if path == "/events":
            return await self._events(request, who, session, csrf)
        route = _PAGES.get(path)
        if route is None:
            page = pages.error_page("Not found", f"no page {path}", self._who(who), csrf)
            return _html(404, page)
        return await route(self, request, who, csrf)

    def _static_file(self, name: str) -> Response:
        body = self._static.get(name)
        if body is None:
            return text_response(404, "not found")
        return Response(200, body, STATIC[name])

    def _login(self, request: Request) -> Response:
        if request.method != "POST":
            return _html(200, pages.login_page())
        if self._cross_site(request):
            return text_response(403, "a login must come from this console's own page")
        token = request.form.get("token", "").strip()
        login = tokens.verify(self._secret, token, self._clock())
        if login is None:
            return _html(401, pages.login_page("That token is not valid or has expired."))
        age = max(1, int(login.expires - self._clock()))
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={age}"
        return _redirect("/", (("Set-Cookie", cookie),))

    def _refusal(self, request: Request, session: str) -> str | None:
        """Why a POST is refused (``None``: it is not): from another site, or without this
        session's CSRF token."""
        if self._cross_site(request):
            return "refused: the request came from another site"
        if not tokens.csrf_ok(self._secret, session, request.form.get("csrf", "")):
            return "refused: the form's CSRF token is missing or wrong (reload the page)"
        return None

    @staticmethod
    def _loopback_host(host: str) -> bool:
        """Whether a ``Host`` header names loopback. A page of another site whose name was
        made to resolve to 127.0.0.1 (DNS rebinding) sends its own name: it gets nothing
        here, not even the login page."""
        name = host if host.endswith("]") else host.rpartition(":")[0] or host
        name = name.removeprefix("[").removesuffix("]").lower()
        if name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False  # a name (127.0.0.1.evil.example included): not ours

    @staticmethod
    def _cross_site(request: Request) -> bool:
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return True
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        if origin is None:
            return False
        if origin == "null":  # an opaque origin: only the browser's own word can vouch
            return fetch_site != "same-origin"
        # Either scheme: behind a TLS proxy (allow_remote) the browser's origin is https.
        scheme, _, netloc = origin.partition("://")
        return host is None or scheme not in ("http", "https") or netloc != host

    def _who(self, who: Principal) -> str:
        name = self._names.get(who.uid)
        if name is None:
            try:
                name = pwd.getpwuid(who.uid).pw_name
            except KeyError:
                name = f"uid {who.uid}"
            self._names[who.uid] = name
        tenants = self._auth.tenants_of(who)
        scope = "admin" if tenants is None else "tenants: " + ", ".join(sorted(tenants))
        return f"{name} ({scope})"

    async def _call(self, who: Principal, op: str, message: dict[str, Any]) -> dict[str, Any]:
        reply = self._ops(who, op, message)
        return reply if isinstance(reply, dict) else await reply

    def _may_see(self, who: Principal, tenant: str) -> bool:
        allowed = self._auth.tenants_of(who)
        return allowed is None or tenant in allowed

    def _failure(self, error: AsynctaskError, who: Principal, csrf: str) -> Response:
        status = 400
        if isinstance(error, NotFound):
            status = 404
        elif isinstance(error, Unauthorized):
            status = 403
        elif isinstance(error, StorageError):
            status = 503
        title = "Not found" if status == 404 else "Refused"
        return _html(status, pages.error_page(title, error.message, self._who(who), csrf))

    # -- pages ----------------------------------------------------------------------------

    async def _overview(self, request: Request, who: Principal, csrf: str) -> Response:
        try:
            stats = await self._call(who, "stats", {})
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        notice = NOTICES.get(request.query.get("done", ""), "")
        return _html(200, pages.overview_page(stats, self._who(who), csrf, notice))

    async def _tasks(self, request: Request, who: Principal, csrf: str) -> Response:
        filters = {k: request.query[k].strip() for k in pages.LIST_FILTERS if k in request.query}
        try:
            message = self._list_message(filters)
            cursor = request.query.get("cursor")
            if cursor:
                message["cursor"] = cursor
            reply = await self._call(who, "list", message)
        except ValueError as exc:
            return _html(400, pages.error_page("Bad filter", str(exc), self._who(who), csrf))
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        notice = _bulk_notice(request.query)
        page = pages.tasks_page(
            reply["tasks"], filters, reply.get("cursor"), self._who(who), csrf, notice
        )
        return _html(200, page)

    # -- live updates ---------------------------------------------------------------------

    async def _events(
        self, request: Request, who: Principal, session: str, csrf: str
    ) -> Response | Stream:
        """``/events?view=overview`` or ``/events?view=task&tenant=&id=``: the page's live
        region, pushed at most once a second while it changes (``live.py``)."""
        scope = self._auth.tenants_of(who)
        view: tuple[Any, ...]
        if request.query.get("view") == "overview":
            view = ("overview", scope)
        elif request.query.get("view") == "task":
            tenant = request.query.get("tenant") or "default"
            task_id = request.query.get("id", "")
            try:  # a task it may not see, or a malformed ID: no stream at all
                await self._read_task(who, tenant, task_id)
            except AsynctaskError as exc:
                return text_response(404 if isinstance(exc, NotFound) else 400, exc.message)
            view = ("task", scope, tenant, task_id)
        else:
            return text_response(400, "view must be overview or task")
        if self.live.full:
            return text_response(503, "too many live consoles: reload later")
        open_views = self.live.views()
        for gone in [v for v in self._representative if v not in open_views]:
            del self._representative[gone]
        self._representative.setdefault(view, who)

        def alive() -> bool:
            return (
                tokens.verify(self._secret, session, self._clock()) is not None
                and self._auth.tenants_of(who) == scope
            )

        slot = self._slot
        return Stream(self.live.follow(view, lambda text: text.replace(slot, csrf), alive))

    async def _render_view(self, view: Hashable) -> str | None:
        """A live view's HTML, with the CSRF slot for each console to fill; ``None``: gone.
        Rendered as the principal that opened it first (every viewer of a view has the same
        scope, so any of them sees the same)."""
        who = self._representative.get(view)
        if who is None or not isinstance(view, tuple):
            return None
        if view[0] == "overview":
            return pages.overview_body(await self._call(who, "stats", {}), self._slot)
        tenant, task_id = view[2], view[3]
        try:
            task, logs = await self._read_task(who, tenant, task_id)
        except AsynctaskError:  # deleted, or its tenant no longer visible: the stream ends
            return None
        args = await self._arguments(tenant, task_id, task.get("created_at"))
        return pages.task_body(task, logs, self._slot, args)

    async def _arguments(self, tenant: str, task_id: str, created: object) -> str | None:
        """A task's arguments as the page shows them (kept: they never change; ``created``
        tells a task from a later one that took the same ID)."""
        key = (tenant, task_id, created)
        if key in self._args:
            return self._args[key]
        payload = None
        if self._payload_of is not None:
            payload = await self._payload_of(tenant, task_id)
        text = None if payload is None else pages.arguments_text(payload)
        if len(self._args) >= ARGS_KEPT:
            self._args.pop(next(iter(self._args)))
        self._args[key] = text
        return text

    async def _bulk_confirm(self, request: Request, who: Principal, csrf: str) -> Response:
        """``/tasks/bulk?action=&<filters>``: how many tasks the action would touch, and the
        form that does it (nothing changes on a GET)."""
        action = request.query.get("action", "")
        filters = {k: request.query[k].strip() for k in pages.LIST_FILTERS if k in request.query}
        if action not in BULK_STATES:
            return _html(400, pages.error_page("Bad action", f"no bulk action {action!r}",
                                               self._who(who), csrf))  # fmt: skip
        try:
            message, states = self._bulk_message(action, filters)
            count, more = await self._count(who, message) if states else (0, False)
        except ValueError as exc:
            return _html(400, pages.error_page("Bad filter", str(exc), self._who(who), csrf))
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        page = pages.bulk_page(
            action, filters, states, BULK_STATES[action], count, more, self._who(who), csrf
        )
        return _html(200, page)

    def _bulk_message(
        self, action: str, filters: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """The selector of a bulk action: the list filters, their states narrowed to those the
        action applies to (always named, so ``pause``/``resume`` select tasks, not a queue)."""
        message = self._list_message(filters)
        message.pop("limit", None)
        allowed = BULK_STATES[action]
        asked = message.get("state") or list(allowed)
        states = [state for state in asked if state in allowed]
        message["state"] = states
        return message, states

    async def _count(self, who: Principal, selector: dict[str, Any]) -> tuple[int, bool]:
        """How many tasks ``selector`` matches for ``who`` (by paging ``list``), up to
        ``BULK_COUNTED``; ``True`` when there are more."""
        count, cursor = 0, None
        while count < BULK_COUNTED:
            message = {**selector, "limit": MAX_LIST_LIMIT}
            if cursor is not None:
                message["cursor"] = cursor
            reply = await self._call(who, "list", message)
            count += len(reply["tasks"])
            cursor = reply.get("cursor")
            if cursor is None:
                return count, False
        return count, True

    def _list_message(self, filters: Mapping[str, str]) -> dict[str, Any]:
        """``asynctask list``'s filters as a ``list`` request; ``ValueError`` names a bad one."""
        message: dict[str, Any] = {"limit": PAGE_SIZE}
        for name in ("tenant", "queue", "function", "prefix", "trace_id"):
            if filters.get(name):
                message[name] = filters[name]
        if filters.get("state"):
            message["state"] = [s.strip() for s in filters["state"].split(",") if s.strip()]
        if filters.get("label"):
            labels = {}
            for pair in filters["label"].split(","):
                key, sep, value = pair.strip().partition("=")
                if not sep or not key:
                    raise ValueError(f"label: expected k=v, got {pair.strip()!r}")
                labels[key] = value
            message["labels"] = labels
        for name in ("since", "until"):
            if filters.get(name):
                message[name] = self._moment(name, filters[name])
        return message

    def _moment(self, name: str, text: str) -> float:
        """An ISO 8601 time, or a duration ago (``1h``), as ``list --since`` takes them."""
        try:
            return parse_time(text)
        except ValueError:
            try:
                return self._clock() - parse_duration(text)
            except ValueError:
                pass
        raise ValueError(f"{name}: expected an ISO 8601 time or a duration such as 1h")

    async def _task(self, request: Request, who: Principal, csrf: str) -> Response:
        tenant = request.query.get("tenant") or "default"
        task_id = request.query.get("id", "")
        try:
            task, logs = await self._read_task(who, tenant, task_id)
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        notice = NOTICES.get(request.query.get("done", ""), "")
        # after status: the caller may see this task
        args = await self._arguments(tenant, task_id, task.get("created_at"))
        return _html(200, pages.task_page(task, logs, self._who(who), csrf, notice, args))

    async def _read_task(
        self, who: Principal, tenant: str, task_id: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The task and its logs; another tenant's task is ``NotFound``, as an unknown ID."""
        if not self._may_see(who, tenant):
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
        ref = {"id": task_id, "tenant": tenant}
        try:
            task = (await self._call(who, "status", ref))["task"]
            logs = await self._call(who, "logs", ref)
        except Unauthorized:
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}") from None
        return task, logs

    async def _failures(self, request: Request, who: Principal, csrf: str) -> Response:
        try:
            reply = await self._call(who, "list", {"state": ["failed"], "limit": FAILURES_READ})
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        complete = reply.get("cursor") is None
        return _html(200, pages.failures_page(reply["tasks"], complete, self._who(who), csrf))

    # -- actions --------------------------------------------------------------------------

    async def _act(self, request: Request, who: Principal, csrf: str) -> Response:
        path, form = request.path, request.form
        if path == "/logout":
            expired = f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
            return _redirect("/login", (("Set-Cookie", expired),))
        try:
            if path == "/tasks/bulk":
                return await self._bulk(who, form)
            if path in ("/task/cancel", "/task/retry", "/task/delete"):
                return await self._task_action(who, path.removeprefix("/task/"), form)
            if path in ("/queue/pause", "/queue/resume"):
                op = path.removeprefix("/queue/")
                message = {"tenant": form.get("tenant") or "default", "queue": form.get("queue")}
                await self._call(who, op, message)
                return _redirect("/?" + urlencode({"done": f"{op}d"}))
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        return text_response(404, f"no action {path}")

    async def _task_action(self, who: Principal, op: str, form: Mapping[str, str]) -> Response:
        tenant, task_id = form.get("tenant") or "default", form.get("id", "")
        if not self._may_see(who, tenant):
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}")
        try:
            reply = await self._call(who, op, {"id": task_id, "tenant": tenant})
        except Unauthorized:
            raise NotFound(f"no task {task_id!r} in tenant {tenant!r}") from None
        done = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}[op]
        changed = int(reply.get(done, 0))
        if op == "delete" and changed:
            return _redirect("/tasks?" + urlencode({"done": done}))
        code = done if changed else "nothing"
        return _redirect(pages.task_href(tenant, task_id) + "&" + urlencode({"done": code}))

    async def _bulk(self, who: Principal, form: Mapping[str, str]) -> Response:
        """A confirmed bulk action: the filter as a selector to the op the CLI sends
        (``cancel --state ...``); ``Ops`` narrows it to the caller's tenants."""
        action = form.get("action", "")
        if action not in BULK_STATES:
            return text_response(400, f"no bulk action {action!r}")
        filters = {k: form[k].strip() for k in pages.LIST_FILTERS if k in form}
        try:
            message, states = self._bulk_message(action, filters)
        except ValueError as exc:
            return text_response(400, str(exc))
        changed = 0
        if states:
            reply = await self._call(who, action, message)
            key = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}.get(
                action, "tasks"
            )
            changed = int(reply.get(key) or 0)
        shown = {k: v for k, v in filters.items() if v}
        query = urlencode({**shown, "bulk": action, "n": changed})
        return _redirect(f"/tasks?{query}")

    async def _cron(self, request: Request, who: Principal, csrf: str) -> Response:
        """Cron entries the caller may see, each with its next slot and its last run (the
        task ``cron:<name>:<slot>`` of its last slot, as the daemon submitted it)."""
        try:
            entries = (await self._call(who, "cron_list", {}))["crons"]
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        last: dict[tuple[str, str], dict[str, Any] | None] = {}
        for entry in entries:
            slot = entry.get("last_slot")
            if not isinstance(slot, int | float):
                continue
            ref = {"tenant": entry["tenant"], "id": slot_id(str(entry["name"]), float(slot))}
            try:
                last[(entry["tenant"], entry["name"])] = (await self._call(who, "status", ref))[
                    "task"
                ]
            except AsynctaskError:  # deleted by retention, or not yet stored
                last[(entry["tenant"], entry["name"])] = None
        return _html(200, pages.cron_page(entries, last, self._who(who), csrf))

    async def _nodes(self, request: Request, who: Principal, csrf: str) -> Response:
        """The daemons sharing the store (the ``nodes`` op, open to any user as ``ping``)."""
        try:
            view = await self._call(who, "nodes", {})
        except AsynctaskError as exc:
            return self._failure(exc, who, csrf)
        return _html(200, pages.nodes_page(view, self._who(who), csrf))


def _bulk_notice(query: Mapping[str, str]) -> str:
    """A bulk action's result: the notice is chosen by code, the number parsed (no URL text is
    shown)."""
    template = BULK_NOTICES.get(query.get("bulk", ""))
    number = query.get("n", "")
    if template is None or not number.isdigit():
        return ""
    return template.format(n=int(number))


Route = Callable[[WebConsole, Request, Principal, str], Awaitable[Response]]

_PAGES: Final[dict[str, Route]] = {
    "/": WebConsole._overview,
    "/tasks": WebConsole._tasks,
    "/task": WebConsole._task,
    "/failures": WebConsole._failures,
    "/tasks/bulk": WebConsole._bulk_confirm,
    "/cron": WebConsole._cron,
    "/nodes": WebConsole._nodes,
}


def _html(status: int, page: str) -> Response:
    return Response(status, page.encode())


def _redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(303, b"", "text/plain; charset=utf-8", (("Location", location), *headers))
