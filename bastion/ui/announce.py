"""The dashboard's address, printed when the gateway starts (and by ``bastion ui url``).

With no master key and no SSO (loopback only), the dashboard is not left open: the
address carries a one-time sign-in token, as Jupyter's does. The token goes to the
terminal only (never the log, which may be a file): when stderr is not a terminal, the
line says to run ``bastion ui url`` instead.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from bastion.ui.sessions import login_token, session_key

if TYPE_CHECKING:
    from bastion.config import Settings


def dashboard_url(settings: Settings, port: int | None = None, token: bool = True) -> str:
    """The dashboard's address; for a gateway with no master key and no SSO, with a
    one-time sign-in token (``token``)."""
    cfg = settings.server
    host = cfg.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if cfg.tls is not None else "http"
    url = f"{scheme}://{host}:{port if port is not None else cfg.port}/ui/"
    if token and is_open(settings):
        url = f"{url}login?token={login_token(session_key(settings))}"
    return url


def is_open(settings: Settings) -> bool:
    return settings.server.master_key is None and settings.auth.oidc is None


def announce(settings: Settings, port: int, out: TextIO | None = None) -> None:
    """Prints where the dashboard is (nothing when it is disabled)."""
    if not settings.ui.enabled:
        return
    out = out if out is not None else sys.stderr
    if not is_open(settings):
        line = f"Dashboard: {dashboard_url(settings, port)} (sign in with a key)"
    elif out.isatty():
        line = f"Dashboard: {dashboard_url(settings, port)}  (one-time sign-in link)"
    else:
        line = (f"Dashboard: {dashboard_url(settings, port, token=False)} (for a sign-in "
                "link: bastion ui url)")
    print(line, file=out, flush=True)
