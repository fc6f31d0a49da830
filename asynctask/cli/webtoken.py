"""``asynctask web-token``: a login token for the web console (docs/web-console.md)."""

from __future__ import annotations

import json
import time

import typer

from asynctask.cli.app import HomeOpt, JsonOpt, SocketOpt, client_for, run_client


def web_token(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Print a login link and token for the web console ([web] http in the config).

    The daemon signs the token for the user running this command, as the socket sees it: the
    console then shows what that user may see on the socket (an admin every tenant, a user of
    [auth.users] that user's tenants) and acts with the same rights. Open the link, or paste
    the token in the console's login page. It is valid for [web] token_ttl (default 12h); keep
    it as private as a password. Exit 2 when the console is off or this user may act for no
    tenant."""
    reply = run_client(lambda: client_for(home, socket).web_token())
    if as_json:
        typer.echo(json.dumps({k: reply[k] for k in ("token", "expires_at", "url", "login_url")}))
        return
    expires = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(reply["expires_at"]))
    typer.echo(f"open: {reply['login_url']}")
    typer.echo(f"token: {reply['token']}")
    typer.echo(f"valid until {expires}")
