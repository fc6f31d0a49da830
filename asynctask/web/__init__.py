"""The web console (``[web] http``, docs/web-console.md): pages and actions over the daemon's
own operations, served by the daemon itself.

Theory of operation. The console is one more way in to ``server.ops.Ops``, beside the Unix
socket: every page reads and every action changes through the very handler a CLI request goes
through, as the ``Principal`` its login token names (a uid; admins and ``[auth.users]`` decide
what that uid may see, at each request). So there is no second authorization to get wrong:
another tenant's task is refused by ``Ops`` and shown as "not found".

* ``tokens.py``: login and CSRF tokens, HMAC-signed with a secret kept in the home (pure).
* ``httpserver.py``: a small bounded HTTP/1.1 server (GET pages, POST forms, no keep-alive).
* ``pages.py``: HTML, every value escaped (task text is hostile input).
* ``console.py``: the routes: session, CSRF and origin checks, then a call to ``Ops``.
* ``live.py``: live updates by server-sent events (``/events``): each open view rendered once
  a second for every console of the same scope, pushed only when it changed.
* ``svg.py``: the overview's per-minute charts and a task's stage timeline, as inline SVG.
* ``static/``: the stylesheet and the one script, shipped in the package (no build step).

Bulk actions by filter send the Tasks page's filters as a selector to the ops the CLI uses
(``cancel``/``retry``/``delete``/``pause``/``resume``), after a confirmation page that counts
the matching tasks with ``list``. The Cron page reads ``cron_list`` (and each entry's last run
by its slot's task ID), the Nodes page ``nodes``.
"""
