"""What a gateway without a master key and without SSO (loopback only, every request an
admin) refuses: requests a web page in a browser could make on a visitor's behalf.

- from a browser (it sends ``Sec-Fetch-*`` or ``Origin``), a ``Host`` that is not a
  loopback name or address: a page of ``evil.example`` whose name was re-pointed at
  127.0.0.1 (DNS rebinding) would read the answers as its own origin;
- a change (any method but GET and HEAD) that the browser says another site sent
  (``Sec-Fetch-Site: cross-site`` or ``same-site``), or whose ``Origin`` is not a
  loopback one: a form posted from any web page to ``http://127.0.0.1:8080/api/...``
  needs no CORS and would create keys or erase data.

Clients that are not browsers (SDKs, curl, a script naming the machine's host name) send
none of those headers, and are not affected.
"""

from __future__ import annotations

from bastion.config import is_loopback
from bastion.errors import PermissionDenied
from bastion.server.types import Request

_SAFE = frozenset(("GET", "HEAD", "OPTIONS"))


def host_name(value: bytes) -> str:
    """The host of a ``Host`` header or an origin's authority, without the port."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rpartition(":")[0] if text.count(":") == 1 else text


def check(request: Request) -> None:
    site = request.header(b"sec-fetch-site")
    origin = request.header(b"origin")
    browser = site is not None or origin is not None or (
        request.header(b"sec-fetch-mode") is not None)
    if not browser:
        return
    host = request.header(b"host")
    if host is not None and not is_loopback(host_name(host)):
        raise PermissionDenied(
            "This gateway has no master key, so it answers loopback names only "
            f"(Host: {host[:100].decode('latin-1')!r}); set BASTION_MASTER_KEY to serve "
            "other names", code="host_not_allowed")
    if request.method in _SAFE:
        return
    if (site is not None and site in (b"cross-site", b"same-site")) or (
            origin is not None and (origin == b"null" or not is_loopback(
                host_name(origin.partition(b"://")[2])))):
        raise PermissionDenied(
            "A change sent by another web site's page is refused: this gateway has no "
            "master key (loopback only)", code="cross_site_refused")
