"""The dashboard in a real browser: Playwright drives Debian's chromium against a real
gateway serving the embedded model and a fake upstream, with real traffic.

Signs in, watches a chart change as requests arrive, filters and searches traces, opens
one, follows a chart point to its traces, adds feedback, creates and revokes a key as an
admin, is refused an admin page and another team's trace as a viewer (the server's 403),
and has a CSRF-less POST refused. Every page is screenshotted into ``test-artifacts/ui``
(not committed) and checked with axe-core (zero serious or critical violations).

Without chromium or Playwright these tests skip with the reason outside CI, and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import in_ci
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, trace_of, traced_gateway

CHROMIUM = os.environ.get("BASTION_TEST_CHROMIUM") or shutil.which("chromium") or ""
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "bastion" / "ui" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
PAGES = ("/ui/", "/ui/traces", "/ui/deployments", "/ui/guards", "/ui/keys", "/ui/budgets",
         "/ui/audit")


def _missing() -> str | None:
    if not CHROMIUM:
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (make install puts it in .venv)"
    if not AXE.exists():
        return "axe-core is not built (make install runs npm ci in bastion/ui/frontend)"
    return None


MISSING = _missing()
if MISSING and in_ci():
    raise RuntimeError(f"the dashboard's browser tests cannot run in CI: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        gateway = traced_gateway(up, tmp_path_factory.mktemp("dash"), {"content": "full"}, **{
            "server.master_key": MASTER_KEY,
            "models": [
                {"name": "chat", "backend": "openai", "base_url": up.base_url,
                 "upstream_model": "fake-upstream-model",
                 "pricing": {"input": 1.0, "output": 2.0}},
                {"name": "smollm2", "backend": "llama_cpp", "n_ctx": 1024},
            ],
            "ui": {"refresh_seconds": 1},
        })
        yield gateway
        gateway.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def new_page(browser: Any, gw: RunningGateway, key: str = MASTER_KEY) -> Any:
    """A page of a new browser context, signed in with ``key`` through the form."""
    context = browser.new_context(viewport={"width": 1366, "height": 900},
                                  bypass_csp=False)
    page = context.new_page()
    page.errors = []  # uncaught exceptions and console errors, checked by the tests
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda msg: page.errors.append(msg.text)
            if msg.type == "error" and "status of 40" not in msg.text else None)
    page.goto(f"{gw.base_url}/ui/")
    assert "/ui/login" in page.url
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{gw.base_url}/ui/")
    return page


def charts_drawn(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=chart-requests] canvas') !== null")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def make_key(gw: RunningGateway, **body: Any) -> dict[str, Any]:
    status, made = gw.request("POST", "/api/keys", body)
    assert status == 201, made
    return dict(made)


def traffic(gw: RunningGateway, n: int, content: str = "hello dashboard",
            model: str = "chat") -> list[str]:
    ids = []
    for _ in range(n):
        status, headers, body = gw.request_full("POST", "/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": content}],
            "max_tokens": 8})
        assert status == 200, body
        ids.append(headers["x-request-id"])
    return ids


def test_sign_in_and_the_overview_chart_follows_new_requests(gw: RunningGateway,
                                                             browser: Any) -> None:
    ids = [*traffic(gw, 3), *traffic(gw, 2, "Say hello.", model="smollm2")]
    trace_of(gw, ids[-1])  # the embedded model's answers, and the fake upstream's
    page = new_page(browser, gw)
    charts_drawn(page)
    tile = page.locator("[data-testid=tile-requests]")
    page.evaluate("() => { window.__notReloaded = true; }")  # a reload would drop it
    first = tile.inner_text()
    more = traffic(gw, 20, "a burst of requests")
    trace_of(gw, more[-1])
    page.wait_for_function(
        "(first) => document.querySelector('[data-testid=tile-requests]').innerText !== first",
        arg=first, timeout=15_000)
    assert page.evaluate("() => window.__notReloaded === true")  # live updates, no reload
    assert page.locator("#updated-at").inner_text().startswith("Updated")
    shot(page, "overview")
    assert page.errors == []


def test_a_chart_point_opens_the_traces_behind_it(gw: RunningGateway, browser: Any) -> None:
    trace_of(gw, traffic(gw, 2)[-1])
    page = new_page(browser, gw)
    charts_drawn(page)
    box = page.locator("[data-testid=chart-requests] .u-over").bounding_box()
    assert box is not None
    # the newest bucket is at the right edge: hover there, then click
    x, y = box["x"] + box["width"] - 3, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_url("**/ui/traces?**since=**")
    page.locator("#traces-table tbody tr").first.wait_for()
    assert page.locator("#traces-table tbody tr").count() >= 1
    assert page.errors == []


def test_traces_are_filtered_searched_opened_and_given_feedback(gw: RunningGateway,
                                                               browser: Any) -> None:
    needle = f"zebra-{time.time_ns()}"
    ids = traffic(gw, 1, f"tell me about the {needle}")
    trace_of(gw, ids[0])
    page = new_page(browser, gw)
    page.goto(f"{gw.base_url}/ui/traces")
    page.locator("#traces-table tbody tr").first.wait_for()
    page.fill("#filter-q", needle)
    page.press("#filter-q", "Enter")
    page.wait_for_url(f"**q={needle}**")
    page.wait_for_function(
        "() => document.querySelectorAll('#traces-table tbody tr').length === 1")
    shot(page, "traces")
    page.locator("#traces-table tbody tr a").first.click()
    page.wait_for_url("**/ui/traces/**")
    page.locator("#trace-facts").wait_for()
    assert needle in page.locator("#page").inner_text()
    assert page.locator("#waterfall").count() == 1
    page.locator("#feedback-form").wait_for()
    page.locator("#fb-up").click()
    page.fill("#fb-comment", "helpful")
    page.locator("#fb-submit").click()
    page.wait_for_function("() => document.querySelector('#feedback-list').innerText"
                           ".includes('up')", timeout=10_000)
    shot(page, "trace")
    status, trace = gw.request("GET", f"/api/traces/{ids[0]}")
    assert status == 200 and [(f["value"], f["comment"]) for f in trace["feedback"]] == [
        ("up", "helpful")]
    assert page.errors == []


def test_an_admin_creates_and_revokes_a_key(gw: RunningGateway, browser: Any) -> None:
    page = new_page(browser, gw)
    page.goto(f"{gw.base_url}/ui/keys")
    page.locator("#key-form").wait_for()
    name = f"made-in-ui-{time.time_ns()}"
    page.fill("#key-name", name)
    page.select_option("#key-role", "viewer")
    page.fill("#key-team", "alpha")
    page.locator("#create-key").click()
    secret = page.locator("[data-testid=key-secret-value]")
    secret.wait_for()
    token = secret.inner_text().strip()
    assert token.startswith("bst-"), token
    status, body = gw.request("GET", "/api/stats", key=token)
    assert status == 200, body
    shot(page, "keys")
    status, listed = gw.request("GET", "/api/keys")
    made = next(k for k in listed["data"] if k["name"] == name)
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f"[data-testid=revoke-{made['id']}]").click()
    page.wait_for_function(
        "(id) => !document.querySelector(`[data-testid=revoke-${id}]`)", arg=made["id"],
        timeout=10_000)
    status, _ = gw.request("GET", "/api/stats", key=token)
    deadline = time.monotonic() + 5
    while status != 401 and time.monotonic() < deadline:
        time.sleep(0.1)
        status, _ = gw.request("GET", "/api/stats", key=token)
    assert status == 401
    assert page.errors == []


def test_a_viewer_is_refused_admin_pages_and_other_teams_traces(gw: RunningGateway,
                                                                browser: Any) -> None:
    other = make_key(gw, name="beta-caller", role="user", team="beta")
    status, headers, _ = gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "messages": [{"role": "user", "content": "beta's secret"}]},
        key=other["key"])
    assert status == 200
    beta_trace = headers["x-request-id"]
    trace_of(gw, beta_trace)
    viewer = make_key(gw, name="alpha-viewer", role="viewer", team="alpha")
    page = new_page(browser, gw, viewer["key"])
    assert page.locator("nav a[href='/ui/audit']").count() == 0
    response = page.goto(f"{gw.base_url}/ui/audit")
    assert response is not None and response.status == 403  # the server's, not a hidden link
    shot(page, "viewer-refused")
    page.goto(f"{gw.base_url}/ui/traces/{beta_trace}")
    page.wait_for_function("() => document.querySelector('[role=alert]') !== null")
    assert "beta's secret" not in page.locator("body").inner_text()
    status = page.evaluate(
        "async (id) => (await fetch('/api/traces/' + id)).status", beta_trace)
    assert status == 404


def test_a_post_without_the_csrf_token_is_refused(gw: RunningGateway, browser: Any) -> None:
    page = new_page(browser, gw)
    result = page.evaluate("""async () => {
        const r = await fetch('/api/keys', {method: 'POST', headers: {'content-type':
            'application/json'}, body: JSON.stringify({name: 'no-csrf', role: 'admin'})});
        return [r.status, (await r.json()).error.code];
    }""")
    assert result == [403, "csrf_failed"]
    token = page.get_attribute("meta[name=csrf-token]", "content")
    result = page.evaluate("""async (token) => {
        const r = await fetch('/api/keys', {method: 'POST', headers: {'content-type':
            'application/json', 'x-csrf-token': token},
            body: JSON.stringify({name: 'with-csrf', role: 'viewer', team: 'alpha'})});
        return r.status;
    }""", token)
    assert result == 201


def test_sign_out_ends_the_session(gw: RunningGateway, browser: Any) -> None:
    page = new_page(browser, gw)
    page.locator("form.logout button").click()
    page.wait_for_url("**/ui/login")
    page.goto(f"{gw.base_url}/ui/traces")
    assert "/ui/login" in page.url


def with_logprobs(gw: RunningGateway) -> str:
    """A traced answer that kept its tokens' log-probabilities (content mode full)."""
    status, headers, body = gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "messages": [{"role": "user", "content": "How sure are you?"}],
        "max_tokens": 8, "logprobs": True, "top_logprobs": 2})
    assert status == 200, body
    trace_of(gw, headers["x-request-id"])
    return str(headers["x-request-id"])


def test_a_trace_shows_its_answers_confidence_token_by_token(gw: RunningGateway,
                                                            browser: Any) -> None:
    trace_id = with_logprobs(gw)
    trace = trace_of(gw, trace_id)
    page = new_page(browser, gw)
    page.goto(f"{gw.base_url}/ui/traces/{trace_id}")
    tokens = page.locator("#token-view [data-testid=token]")
    tokens.first.wait_for()
    assert tokens.count() == trace["metadata"]["confidence"]["tokens"]
    assert tokens.first.get_attribute("title").startswith("p = ")
    text = "".join(tokens.all_inner_texts())
    assert text.replace(" ", "") == trace["output"]["content"].replace(" ", "")
    assert "perplexity" in page.locator("#trace-facts").inner_text()
    shot(page, "trace-confidence")
    assert page.errors == []


def test_every_page_passes_axe_and_is_screenshotted(gw: RunningGateway, browser: Any) -> None:
    trace_id = with_logprobs(gw)  # its page shows the per-token view too
    context = browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{gw.base_url}/ui/login")
    found: dict[str, list[str]] = {}
    check(page, "login", found)
    page.fill("#key", MASTER_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{gw.base_url}/ui/")
    for theme in ("light", "dark"):
        page.evaluate("(t) => localStorage.setItem('bastion-theme', t)", theme)
        for path in (*PAGES, f"/ui/traces/{trace_id}"):
            page.goto(f"{gw.base_url}{path}")
            page.wait_for_load_state("networkidle")
            name = (path.strip("/").replace("/", "-") or "ui") + f"-{theme}"
            name = name.replace(trace_id, "one")
            shot(page, name)
            check(page, name, found)
    page.set_viewport_size({"width": 683, "height": 900})  # a 1366-px screen at 200 %
    page.goto(f"{gw.base_url}/ui/traces")
    page.wait_for_load_state("networkidle")
    shot(page, "traces-zoom-200")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 683 + 1, f"the page scrolls sideways at 200 % zoom ({width} px)"
    context.close()
    assert not {k: v for k, v in found.items() if v}, orjson.dumps(found).decode()


def check(page: Any, name: str, found: dict[str, list[str]]) -> None:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: "
                           "['violations']})")
    found[name] = [f"{v['id']} ({v['impact']}): {v['help']} — "
                   f"{[n['target'] for n in v['nodes']][:3]}"
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
