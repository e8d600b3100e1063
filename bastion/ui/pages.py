"""The dashboard's pages as HTML: the shell every page shares (navigation by role, the
session's CSRF token, the theme), the sign-in page and error pages.

A page's content is drawn by ``static/app.js`` from the same ``/api`` endpoints a client
uses, with the session's cookie, so the server decides what each caller may see in one
place (the API), and the page cannot show more than the API gives. Every value written
into the HTML is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from bastion.governance.keys import Principal


@dataclass(frozen=True, slots=True)
class Page:
    slug: str  # data-page of <body>: which of app.js's pages to draw
    title: str
    path: str
    permission: str  # what the role must have (bastion.governance.roles)
    section: str


# Sections in the order of the navigation; later issues add pages (quality, drift, alerts,
# prompts, models, evaluations, rollouts, datasets) as rows here.
SECTIONS = ("Watch", "Govern")
PAGES: tuple[Page, ...] = (
    Page("overview", "Overview", "/ui/", "read", "Watch"),
    Page("traces", "Traces", "/ui/traces", "read", "Watch"),
    Page("deployments", "Deployments", "/ui/deployments", "read", "Watch"),
    Page("guards", "Guards", "/ui/guards", "read", "Watch"),
    Page("keys", "Keys", "/ui/keys", "keys", "Govern"),
    Page("budgets", "Budgets", "/ui/budgets", "read", "Govern"),
    Page("audit", "Audit log", "/ui/audit", "admin", "Govern"),
)
TRACE_PAGE = Page("trace", "Trace", "/ui/traces/", "read", "Watch")
BY_PATH = {p.path: p for p in PAGES}
_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title} · Bastion</title>
<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/static/vendor/uPlot.min.css?v={version}">
<link rel="stylesheet" href="/ui/static/app.css?v={version}">
{meta}</head>
"""


def _who(principal: Principal, kind: str) -> str:
    if principal.key_id is None:
        return "master key" if kind != "open" else "local admin"
    name = principal.name or principal.user or principal.key_id
    return f"{name} ({principal.role}{', ' + principal.team if principal.team else ''})"


def nav(principal: Principal, current: str) -> str:
    parts = ['<nav aria-label="Main"><ul class="nav">']
    for section in SECTIONS:
        links = [p for p in PAGES if p.section == section and principal.can(p.permission)]
        if not links:
            continue
        parts.append(f'<li class="nav-section"><span>{escape(section)}</span><ul>')
        for page in links:
            mark = ' aria-current="page"' if page.slug == current else ""
            parts.append(f'<li><a href="{page.path}"{mark}>{escape(page.title)}</a></li>')
        parts.append("</ul></li>")
    parts.append("</ul></nav>")
    return "".join(parts)


def shell(page: Page, principal: Principal, kind: str, csrf: str, refresh_s: float,
          version: str, extra: dict[str, str] | None = None) -> bytes:
    """A signed-in page: header, navigation, an empty <main> that app.js fills."""
    data = {"page": page.slug, "role": principal.role, "team": principal.team or "",
            "admin": "1" if principal.admin else "", "refresh": f"{refresh_s:g}",
            **(extra or {})}
    attrs = " ".join(f'data-{k}="{escape(v)}"' for k, v in data.items())
    grants = " ".join(sorted(principal.grants))
    meta = (f'<meta name="csrf-token" content="{escape(csrf)}">\n'
            f'<meta name="bastion-grants" content="{escape(grants)}">\n')
    head = _HEAD.format(title=escape(page.title), version=version, meta=meta)
    body = f"""<body {attrs}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/ui/">Bastion</a>
  {nav(principal, page.slug)}
  <div class="who">
    <span class="who-name">{escape(_who(principal, kind))}</span>
    <button type="button" class="theme" id="theme"
            aria-label="Switch between light and dark theme">Theme</button>
    <form method="post" action="/ui/logout" class="logout">
      <input type="hidden" name="csrf" value="{escape(csrf)}">
      <button type="submit">Sign out</button>
    </form>
  </div>
</header>
<main id="main" tabindex="-1">
  <h1>{escape(page.title)}</h1>
  <div id="page"><p class="muted">Loading…</p></div>
</main>
<script src="/ui/static/vendor/uPlot.iife.min.js?v={version}"></script>
<script type="module" src="/ui/static/app.js?v={version}"></script>
</body>
</html>
"""
    return (head + body).encode()


def login(version: str, message: str | None = None, open_mode: bool = False,
          next_path: str = "/ui/", sso: bool = False) -> bytes:
    """The sign-in page: a key (virtual or master) in a form posted to /ui/login."""
    note = ""
    if message:
        note = f'<p class="error" role="alert">{escape(message)}</p>'
    if open_mode:
        form = ("<p>This gateway runs without a master key (loopback only). Open the "
                "sign-in link that <code>bastion serve</code> printed, or print a new one "
                "with <code>bastion ui url</code>.</p>")
    else:
        hint = " or an SSO token" if sso else ""
        form = f"""<form method="post" action="/ui/login" class="login">
  <label for="key">API key</label>
  <input id="key" name="key" type="password" autocomplete="current-password" required
         placeholder="bst-…"{' aria-describedby="login-error"' if message else ''}>
  <input type="hidden" name="next" value="{escape(next_path)}">
  <p class="muted">A virtual key (viewer, developer or admin), the master key{hint}.</p>
  <button type="submit">Sign in</button>
</form>"""
    head = _HEAD.format(title="Sign in", version=version, meta="")
    return (head + f"""<body data-page="login">
<main id="main" class="narrow">
  <h1>Sign in to Bastion</h1>
  {note.replace('class="error"', 'id="login-error" class="error"')}
  {form}
</main>
<script type="module" src="/ui/static/app.js?v={version}"></script>
</body>
</html>
""").encode()


def error(version: str, status: int, title: str, message: str,
          principal: Principal | None = None, kind: str = "") -> bytes:
    """An error page (403, 404): with the navigation when someone is signed in."""
    head = _HEAD.format(title=escape(title), version=version, meta="")
    top = ""
    if principal is not None:
        top = f"""<header class="top"><a class="brand" href="/ui/">Bastion</a>
{nav(principal, "")}<div class="who">
<span class="who-name">{escape(_who(principal, kind))}</span></div>
</header>"""
    return (head + f"""<body data-page="error" data-status="{status}">
{top}
<main id="main" class="narrow">
  <h1>{escape(title)}</h1>
  <p>{escape(message)}</p>
  <p><a href="/ui/">Back to the dashboard</a></p>
</main>
<script type="module" src="/ui/static/app.js?v={version}"></script>
</body>
</html>
""").encode()
