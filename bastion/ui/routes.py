"""The dashboard's routes (``/ui``): sign-in and out, the pages' shells, the assets.

The data behind the pages comes from ``/api``, where the gateway authenticates the
session cookie, checks the CSRF token of every change, the role and the team, exactly as
it does for a key in a header (:mod:`bastion.ui.sessions`). Here a page is refused by the
server too: a role without the page's permission gets a 403 page, not a hidden link.
These routes are not part of ``/openapi.json``: they answer HTML, not the API.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote

from bastion.errors import AuthenticationFailed, BastionError
from bastion.governance.keys import MASTER, Principal
from bastion.governance.oidc import SigningKeyUnknown
from bastion.server.types import Headers, Request, Response
from bastion.ui import pages
from bastion.ui.sessions import COOKIE, Session, Sessions, cookie_value
from bastion.ui.static_files import Assets

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

HTML = b"text/html; charset=utf-8"
# what the pages may load and do: this origin only, no inline script, no framing
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       b"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       b"form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS: Headers = [
    (b"content-security-policy", CSP), (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
]
_MAX_FORM = 16 * 1024


def html(status: int, body: bytes, extra: Headers | None = None) -> Response:
    return Response(status, body, [(b"content-type", HTML), (b"cache-control", b"no-store"),
                                   *SECURITY_HEADERS, *(extra or [])])


def redirect(location: str, extra: Headers | None = None) -> Response:
    return Response(303, b"", [(b"location", location.encode()),
                               (b"cache-control", b"no-store"), *SECURITY_HEADERS,
                               *(extra or [])])


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site only (no open redirect
    to ``//evil.example`` or ``/ui/\\evil``)."""
    if (not raw or not raw.startswith("/ui/") or "//" in raw or "\\" in raw
            or any(ord(ch) < 0x21 for ch in raw)):
        return "/ui/"
    return raw


def same_origin(request: Request) -> bool:
    """False for a request a browser says another site sent (a sign-in or sign-out form
    posted from elsewhere): ``Sec-Fetch-Site``, else ``Origin`` against ``Host``."""
    site = request.header(b"sec-fetch-site")
    if site is not None and site not in (b"same-origin", b"none"):
        return False
    origin = request.header(b"origin")
    if origin is None or origin == b"null":
        return origin is None
    host = request.header(b"host") or b""
    return origin.partition(b"://")[2] == host


def _form(request: Request) -> dict[str, str]:
    if len(request.body) > _MAX_FORM:
        return {}
    try:
        return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}


Table = dict[str, dict[str, "Endpoint"]]
Prefixed = list[tuple[str, dict[str, "Endpoint"]]]


def build(gw: Gateway) -> tuple[Table, Prefixed]:
    """The dashboard's routes: exact paths, and (prefix, methods) tried in order."""
    sessions: Sessions = gw.sessions
    assets = Assets()

    version = assets.version

    def current(request: Request) -> Session | None:
        value = cookie_value(request.header(b"cookie"), COOKIE)
        return sessions.verify(value) if value is not None else None

    def page_endpoint(page: pages.Page) -> Endpoint:
        async def show(request: Request, ctx: RequestContext) -> Response:
            session = current(request)
            if session is None:
                return redirect(f"/ui/login?next={quote(request.path)}")
            return render(page, session)

        return show

    def render(page: pages.Page, session: Session, extra: dict[str, str] | None = None,
               ) -> Response:
        principal = session.principal
        if not principal.can(page.permission):
            return html(403, pages.error(
                version(), 403, "Not allowed",
                f"This key's role ({principal.role}) may not open the {page.title} page.",
                principal, session.kind))
        return html(200, pages.shell(page, principal, session.kind, session.csrf,
                                     gw.settings.ui.refresh_seconds, version(), extra))

    async def root(request: Request, ctx: RequestContext) -> Response:
        return redirect("/ui/")

    async def login_form(request: Request, ctx: RequestContext) -> Response:
        params = dict(parse_qsl(request.query))
        next_path = safe_next(params.get("next"))
        token = params.get("token")
        if token is not None:  # a one-time sign-in link (a gateway with no master key)
            if sessions.open and sessions.redeem(token):
                cookie = sessions.issue("open", MASTER)
                return redirect(next_path, [(b"set-cookie", sessions.cookie_header(cookie))])
            return html(401, pages.login(version(), "This sign-in link is not valid "
                                         "(used, expired, or from another gateway).",
                                         sessions.open, next_path))
        if current(request) is not None:
            return redirect(next_path)
        return html(200, pages.login(version(), None, sessions.open, next_path,
                                     gw.oidc is not None))

    async def login(request: Request, ctx: RequestContext) -> Response:
        form = _form(request)
        next_path = safe_next(form.get("next"))
        if not same_origin(request):
            return html(403, pages.login(version(), "Sign in from this gateway's own page.",
                                         sessions.open, next_path))
        if sessions.open:
            return html(400, pages.login(version(), None, True, next_path))
        token = form.get("key", "").strip()
        try:
            try:
                kind, principal = gw.principal_of_token(token.encode())
            except SigningKeyUnknown as unknown:  # the issuer rotated its keys
                kind, principal = "oidc", await unknown.retry()
        except AuthenticationFailed as exc:
            gw.metrics.auth_failure(exc.reason)
            gw.failed_keys.note(exc.reason, b"Bearer " + token.encode(), request.client)
            return html(401, pages.login(version(), exc.message, False, next_path,
                                         gw.oidc is not None))
        except BastionError as exc:  # keys not loaded yet, the issuer unreachable
            return html(exc.status, pages.login(version(), exc.message, False, next_path))
        if not (principal.can("read") or principal.can("keys")):
            return html(403, pages.login(
                version(), f"This key's role ({principal.role}) calls models but cannot "
                           "read the dashboard: use a viewer, developer or admin key.",
                False, next_path))
        await gw.audit.record(principal.key_id or "master-key", "ui.login", None,
                              {"kind": kind})
        cookie = sessions.issue(kind, principal)
        return redirect(next_path, [(b"set-cookie", sessions.cookie_header(cookie))])

    async def logout(request: Request, ctx: RequestContext) -> Response:
        session = current(request)
        clear = [(b"set-cookie", sessions.clear_cookie_header())]
        if session is None:
            return redirect("/ui/login", clear)
        given = _form(request).get("csrf", "") or (request.header(b"x-csrf-token") or b""
                                                    ).decode("latin-1")
        if not same_origin(request) or not hmac.compare_digest(given, session.csrf):
            return html(403, pages.error(version(), 403, "Not signed out",
                                         "Sign out from the dashboard's own button."))
        sessions.logout(session)
        if gw.signouts is not None:  # and every other worker's, within a poll
            await gw.signouts.record(session.sid, session.expires_at)
        return redirect("/ui/login", clear)

    out: dict[str, dict[str, Endpoint]] = {
        "/ui": {"GET": root},
        "/ui/login": {"GET": login_form, "POST": login},
        "/ui/logout": {"POST": logout},
    }
    for page in pages.PAGES:
        out[page.path] = {"GET": page_endpoint(page)}

    async def static(request: Request, ctx: RequestContext) -> Response:
        name = request.path[len("/ui/static/"):]
        asset = assets.get(name)
        if asset is None:
            return Response(404, b"not found\n", [(b"content-type", b"text/plain"),
                                                   *SECURITY_HEADERS])
        headers: Headers = [(b"content-type", asset.content_type), (b"etag", asset.etag),
                            (b"cache-control", b"public, max-age=3600"),
                            (b"vary", b"accept-encoding"), *SECURITY_HEADERS]
        if request.header(b"if-none-match") == asset.etag:
            return Response(304, b"", headers)
        accepts = request.header(b"accept-encoding") or b""
        if asset.gzipped is not None and b"gzip" in accepts:
            return Response(200, asset.gzipped, [*headers, (b"content-encoding", b"gzip")])
        return Response(200, asset.body, headers)

    async def trace(request: Request, ctx: RequestContext) -> Response:
        session = current(request)
        if session is None:
            return redirect(f"/ui/login?next={quote(request.path)}")
        trace_id = unquote(request.path[len("/ui/traces/"):])
        return render(pages.TRACE_PAGE, session, {"trace": trace_id})

    async def not_found(request: Request, ctx: RequestContext) -> Response:
        session = current(request)
        principal: Principal | None = session.principal if session is not None else None
        return html(404, pages.error(version(), 404, "Not found",
                                     f"There is no dashboard page at {request.path[:200]}.",
                                     principal, session.kind if session else ""))

    return out, [("/ui/static/", {"GET": static}), ("/ui/traces/", {"GET": trace}),
                 ("/ui/", {"GET": not_found, "POST": not_found})]
