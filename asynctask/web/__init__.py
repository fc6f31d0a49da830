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
* ``static/``: the stylesheet and the one script, shipped in the package (no build step).

Where later work plugs in: live updates (server-sent events) are one more route in
``console.py`` answering with a stream instead of a page; charts take the per-minute series
that ``stats`` already returns (``*_per_minute``) and draw them in ``pages.py`` as inline SVG;
cron and nodes pages call the ``cron_list`` and ``nodes`` ops; bulk actions by filter send the
list filters as a selector to the same ops (``cancel``/``retry``/``delete`` take them).
"""
