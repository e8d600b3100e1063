/* Bastion dashboard: fills each page's <div id="page"> from the gateway's JSON API.
 * One ES module, no build step. The DOM is built with createElement and textContent only:
 * trace content is untrusted and is never parsed as HTML.
 *
 * Test hooks: #id, [x] = [data-testid=x]. Every page: #theme, [api-error] (role=alert).
 * overview: #range #filter-{model,deployment,key_id,team,user} #apply-filters #overview-error
 *   #updated-at #tiles [tile-N] [tile-N-value] (N: requests latency-p50 latency-p95 latency-p99
 *   ttft-p50 tokens-per-s error-rate availability cost guard-rate blocked) [chart-C]
 *   [chart-C-traces] (C: requests latency cost tokens)
 * traces: #traces-form #filter-{q,model,deployment,key_id,team,user,session,status,guard,
 *   min_latency_ms,max_confidence,since,until} #apply-filters #clear-filters #traces-table #traces-empty
 *   #traces-error #older #newer [trace-row-ID]
 * trace: #trace-facts #waterfall [span-N] #trace-input #trace-output #trace-guards
 *   #token-view [token] (an answer's tokens, when the trace kept their logprobs)
 *   #feedback-list #feedback-form #fb-up #fb-down #fb-comment #fb-submit #feedback-status
 *   #trace-missing #trace-error
 * deployments: #deployments-table #deployments-empty #updated-at [deployment-NAME]
 * guards: #range #guard-counts [guard-count-A] (A: block redact pseudonymize flag rate)
 *   #guarded-table #guarded-empty #updated-at
 * keys: #key-form #key-{name,role,team,user,models,expiry-days} #create-key #key-form-error
 *   #key-secret [key-secret-value] #copy-secret #dismiss-secret #keys-table #keys-empty
 *   #keys-error [key-row-ID] [rotate-ID] [revoke-ID]
 * budgets: #budgets-table #budgets-empty #updated-at [budget-bar-SCOPE-NAME]
 * audit: #verify-audit #audit-result [audit-ok] [audit-broken] #audit-table #audit-empty
 *   #audit-error #audit-older #audit-newer
 */

const ds = document.body.dataset;
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
const CSRF = meta("csrf-token");
const GRANTS = new Set(meta("bastion-grants").split(/\s+/).filter(Boolean));
const IS_ADMIN = ds.admin === "1";
const REFRESH_S = Number(ds.refresh || 5);

// ------------------------------------------------------------------ DOM helpers
/** h("a", {href, text, class, onclick, ...attributes}, ...children) */
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "value") value = v; // after the children: a <select>'s options
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, kids);
  if (value !== undefined) el.value = value;
  return el;
}

function append(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const clear = (el, ...kids) => { el.replaceChildren(); return append(el, kids); };
const $ = (sel, root = document) => root.querySelector(sel);
const page = () => $("#page");
const button = (id, label, props) => h("button", { type: "button", id, text: label, ...props });

// --------------------------------------------------------------------- formats
const dash = "—";
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const fmtMs = (v) => (!isNum(v) ? dash
  : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`);
const fmtCost = (v) => (!isNum(v) ? dash : v === 0 ? "0" // 4 to 6 decimals, no symbol
  : v.toFixed(Math.abs(v) < 0.01 ? 6 : 4).replace(/(\.\d{4}\d*?)0+$/, "$1"));
const fmtPct = (v) => (!isNum(v) ? dash
  : `${(v * 100).toFixed(v > 0.99 && v < 1 ? 2 : 1)}%`);
const fmtRate = (v) => (!isNum(v) ? dash : v === 0 ? "0"
  : v < 0.01 ? v.toPrecision(2) : v.toFixed(v < 10 ? 2 : 1));
const fmtInt = (v) => (isNum(v) ? Math.round(v).toLocaleString() : dash);
const fmtTime = (ts) => (isNum(ts) ? new Date(ts * 1000).toLocaleString() : dash);
const fmtShort = (ts) => (isNum(ts) ? new Date(ts * 1000).toLocaleString(undefined,
  { dateStyle: "short", timeStyle: "medium" }) : dash);
const ratio = (a, b) => (b ? a / b : null);
const text = (v) => (v == null || v === "" ? dash : String(v));
const json = (v) => JSON.stringify(v);

// --------------------------------------------------------------------- the API
const apiError = (status, message, e = {}) => Object.assign(new Error(message),
  { status, type: e.type, code: e.code, param: e.param });

function qs(params) {
  const s = new URLSearchParams(Object.entries(params || {})
    .filter(([, v]) => v != null && v !== "")).toString();
  return s ? `?${s}` : "";
}

/** fetch on this origin with the session cookie; an error envelope is thrown as an Error
 * with status, type, code and param; a 401 (the session ended) goes to the sign-in page. */
async function api(path, { method = "GET", params, data } = {}) {
  const init = { method, credentials: "same-origin", headers: { accept: "application/json" } };
  if (method !== "GET") {
    Object.assign(init.headers, { "x-csrf-token": CSRF, "content-type": "application/json" });
    if (data !== undefined) init.body = JSON.stringify(data);
  }
  const res = await fetch(path + qs(params), init).catch((err) => {
    throw apiError(0, `The gateway did not answer (${err.message}).`);
  });
  if (res.status === 401) {
    location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw apiError(401, "The session ended: signing in again…");
  }
  const out = await res.json().catch(() => null);
  if (!res.ok) {
    const e = out?.error || {};
    throw apiError(res.status, e.message || `HTTP ${res.status} ${res.statusText}`, e);
  }
  return out;
}

function errorBox(err, id) {
  const facts = [err.status ? `HTTP ${err.status}` : null, err.type, err.code,
    err.param ? `param: ${err.param}` : null].filter(Boolean).join(" · ");
  return h("div", { class: "error", role: "alert", id, "data-testid": "api-error" },
    h("strong", { text: "Error: " }), err.message || String(err),
    facts ? h("span", { class: "error-facts", text: ` (${facts})` }) : null);
}

/** Runs fn: its error shows in slot (once: a live page's repeated error is not announced
 * again at each refresh), a success empties slot. */
async function attempt(slot, fn) {
  try {
    const out = await fn();
    slot.replaceChildren();
    return out;
  } catch (err) {
    const box = errorBox(err);
    if (err.status !== 401 && slot.textContent !== box.textContent) clear(slot, box);
    return undefined;
  }
}

// --------------------------------------------------------------- shared widgets
const section = (title, id, ...kids) => h("section",
  { class: "card", "aria-labelledby": `${id}-title`, id: `${id}-section` },
  h("h2", { id: `${id}-title`, text: title }), ...kids);

function field(id, label, input, hint) {
  input.id = id;
  if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input,
    hint ? h("span", { class: "hint muted", id: `${id}-hint`, text: hint }) : null);
}

function select(options, value) {
  const el = h("select", {}, options.map(([v, label]) => h("option", { value: v, text: label })));
  if (value && !options.some(([v]) => v === value)) el.append(h("option", { value, text: value }));
  el.value = value || options[0][0];
  return el;
}

/** A table in a focusable, labelled scroll wrapper, and an empty-state line after it.
 * columns: [label, cell(row), cls]: cls "num", "head" (a row header) or a class. */
function dataTable(id, label, columns, emptyText) {
  const tbody = h("tbody");
  const table = h("table", { id, class: "data" },
    h("caption", { class: "visually-hidden", text: label }),
    h("thead", {}, h("tr", {}, columns.map(([name, , cls]) =>
      h("th", { scope: "col", class: cls === "num" ? "num" : null, text: name })))), tbody);
  const empty = h("p", { class: "empty muted", id: id.replace(/(-table)?$/, "-empty"),
    text: emptyText, hidden: true });
  const cell = (row, [, fn, cls]) => (cls === "head"
    ? h("th", { scope: "row" }, fn(row)) : h("td", { class: cls }, fn(row)));
  const set = (rows, rowProps) => {
    clear(tbody, rows.map((row) => h("tr", rowProps?.(row), columns.map((c) => cell(row, c)))));
    table.hidden = rows.length === 0;
    empty.hidden = rows.length > 0;
  };
  const wrap = h("div", { class: "table-wrap", tabindex: "0", role: "region",
    "aria-label": `${label} (table)` }, table);
  return { el: h("div", { class: "table-block" }, wrap, empty), set };
}

const badge = (label, kind) => h("span", { class: `badge badge-${kind}`, text: label });
const actionBadge = (a) => badge(text(a), a === "block" ? "err" : "warn");
const statusBadge = (r) => h("span", { title: r.error }, badge(text(r.status), r.status == null
  ? "muted" : r.status >= 500 ? "err" : r.status >= 400 ? "warn" : "ok"));
const tracesHref = (params) => `/ui/traces${qs(params)}`;
const traceLink = (row) => h("a", { href: `/ui/traces/${encodeURIComponent(row.id)}`,
  text: fmtShort(row.ts) });
const urlParams = () => Object.fromEntries(new URLSearchParams(location.search));

/** "Updated HH:MM:SS" and an error slot, for the live pages (not announced at each tick). */
function statusRow(prefix) {
  const stamp = h("p", { id: "updated-at", class: "muted small", "aria-live": "off" });
  const slot = h("div", { id: `${prefix}-error` });
  const ok = () => { stamp.textContent = `Updated ${new Date().toLocaleTimeString()}`; };
  return { el: h("div", { class: "status-row" }, stamp, slot), slot, ok };
}

/** Runs `run` now and every REFRESH_S seconds while the tab is visible, never twice at
 * once; the function returned asks for a run now (after the one in progress). */
function live(run) {
  let busy = false;
  let again = false;
  async function tick(force) {
    if (!force && document.hidden) return;
    if (busy) { again = again || force; return; }
    busy = true;
    try { await run(); } catch (err) { console.warn(err); } finally { busy = false; }
    if (again) { again = false; tick(true); }
  }
  if (REFRESH_S > 0) setInterval(() => tick(false), REFRESH_S * 1000);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(false); });
  tick(true);
  return () => tick(true);
}

/** Back and forward buttons over a stack of keyset cursors. */
function pager(label, [backId, backText], [fwdId, fwdText], load) {
  const stack = [];
  let next = null;
  const back = button(backId, backText, { class: "secondary", disabled: true,
    onclick: () => { stack.pop(); load(); } });
  const fwd = button(fwdId, fwdText, { class: "secondary", disabled: true,
    onclick: () => { if (next != null) { stack.push(next); load(); } } });
  const where = h("span", { class: "muted small" });
  return {
    el: h("nav", { class: "pager", "aria-label": label }, back, fwd, where),
    cursor: () => stack.at(-1),
    reset: () => { stack.length = 0; },
    done(cursor, note) {
      next = cursor ?? null;
      fwd.disabled = next == null;
      back.disabled = stack.length === 0;
      where.textContent = note ?? `Page ${stack.length + 1}`;
      const lost = document.activeElement; // a button just disabled: focus the other one
      if ((lost === back || lost === fwd) && lost.disabled) (lost === back ? fwd : back).focus();
    },
  };
}

const RANGES = [["15m", "Last 15 minutes", 15], ["1h", "Last hour", 60],
  ["6h", "Last 6 hours", 300], ["24h", "Last 24 hours", 1800],
  ["7d", "Last 7 days", 10800], ["30d", "Last 30 days", 43200]]; // ~60 buckets each
const rangeOf = (value, fallback) => RANGES.find((r) => r[0] === value)
  || RANGES.find((r) => r[0] === fallback);

function rangeSelect(value, onChange) {
  const el = select(RANGES, value);
  el.addEventListener("change", () => onChange(el.value));
  return field("range", "Time range", el);
}

// ----------------------------------------------------------------------- theme
const THEME_KEY = "bastion-theme";
const darkQuery = matchMedia("(prefers-color-scheme: dark)");
const root = document.documentElement;

const storedTheme = () => {
  try { return localStorage.getItem(THEME_KEY); } catch { return null; }
};

function applyTheme(theme) {
  root.dataset.theme = theme;
  const toggle = $("#theme");
  if (toggle) {
    toggle.textContent = theme === "dark" ? "Dark" : "Light";
    toggle.setAttribute("aria-label",
      `Theme: ${theme}. Switch to the ${theme === "dark" ? "light" : "dark"} theme`);
  }
  document.dispatchEvent(new CustomEvent("bastion:theme"));
}

function initTheme() {
  applyTheme(storedTheme() || (darkQuery.matches ? "dark" : "light"));
  darkQuery.addEventListener("change", (e) => {
    if (!storedTheme()) applyTheme(e.matches ? "dark" : "light");
  });
  $("#theme")?.addEventListener("click", () => {
    const next = root.dataset.theme === "dark" ? "light" : "dark";
    try { localStorage.setItem(THEME_KEY, next); } catch { /* private mode: not kept */ }
    applyTheme(next);
  });
}

const cssVar = (name) => getComputedStyle(root).getPropertyValue(name).trim();

// ---------------------------------------------------------------------- charts
const CHART_HEIGHT = 220;
const CHARTS = [
  { id: "requests", title: "Requests and errors per second", fmt: fmtRate, series: [
    ["Requests/s", (b) => b.qps],
    ["Errors/s", (b) => (b.requests ? (b.qps * b.errors) / b.requests : 0)]] },
  { id: "latency", title: "Latency percentiles and time to first token", fmt: fmtMs, series: [
    ["p50", (b) => b.latency_p50_ms], ["p95", (b) => b.latency_p95_ms],
    ["p99", (b) => b.latency_p99_ms], ["TTFT p50", (b) => b.ttft_p50_ms]] },
  { id: "cost", title: "Cost per bucket", fmt: fmtCost, series: [["Cost", (b) => b.cost]] },
  { id: "tokens", title: "Output tokens per second", fmt: fmtRate,
    series: [["Tokens/s", (b) => b.output_tokens_per_s]] },
];

function chartOptions(def, width, onPick) {
  const colors = [1, 2, 3, 4].map((i) => cssVar(`--series-${i}`));
  const grid = { stroke: cssVar("--grid"), width: 1 };
  const axis = { stroke: cssVar("--muted"), grid, ticks: grid };
  const pick = (u) => u.over.addEventListener("click", (e) => {
    const idx = u.posToIdx(e.offsetX) ?? u.cursor.idx;
    if (idx != null && idx >= 0) onPick(idx);
  });
  return {
    width,
    height: CHART_HEIGHT,
    cursor: { drag: { x: false, y: false, setScale: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [axis, { ...axis, size: 76, values: (u, splits) => splits.map((v) => def.fmt(v)) }],
    series: [{ value: (u, v) => (v == null ? dash : new Date(v * 1000).toLocaleTimeString()) },
      ...def.series.map(([label], i) => ({ label, stroke: colors[i], width: 2,
        value: (u, v) => def.fmt(v), points: { show: true, size: 4, fill: colors[i] } }))],
    hooks: { ready: [(u) => { u.over.classList.add("clickable"); pick(u); }] },
  };
}

/** A uPlot chart in a figure: update() redraws it; it follows its box's width and is
 * rebuilt in the colours of a new theme. */
function makeChart(def, onPick) {
  const holder = h("div", { class: "chart", role: "img", "data-testid": `chart-${def.id}`,
    "aria-label": def.title });
  const link = h("a", { class: "chart-link", "data-testid": `chart-${def.id}-traces`,
    href: "/ui/traces", text: "View traces for this range" });
  let plot = null;
  let data = [[], ...def.series.map(() => [])];
  const width = () => Math.max(200, Math.floor(holder.clientWidth || 600));
  const build = () => {
    plot?.destroy();
    plot = null;
    if (typeof uPlot === "undefined") {
      clear(holder, h("p", { class: "muted", text: "Charts unavailable: uPlot did not load." }));
    } else {
      holder.replaceChildren();
      plot = new uPlot(chartOptions(def, width(), onPick), data, holder);
    }
  };
  new ResizeObserver(() => {
    if (plot && width() !== plot.width) plot.setSize({ width: width(), height: CHART_HEIGHT });
  }).observe(holder);
  document.addEventListener("bastion:theme", () => { if (plot) build(); });
  const update = (buckets, summary, href) => {
    data = [buckets.map((b) => b.ts), ...def.series.map(([, get]) =>
      buckets.map((b) => (isNum(get(b)) ? get(b) : null)))];
    holder.setAttribute("aria-label", `${def.title}. ${summary}`);
    link.href = href;
    if (plot) plot.setData(data); else build();
  };
  const figure = h("figure", { class: "card chart-card" },
    h("figcaption", { text: def.title }), holder, link);
  return { el: figure, update };
}

// -------------------------------------------------------------------- overview
const LABELS = { model: "Model", deployment: "Deployment", key_id: "Key id", team: "Team",
  user: "User" };
const TILES = [
  ["requests", "Requests/s", (t) => fmtRate(t.qps), (t) => `${fmtInt(t.requests)} requests`],
  ["latency-p50", "Latency p50", (t) => fmtMs(t.latency_p50_ms)],
  ["latency-p95", "Latency p95", (t) => fmtMs(t.latency_p95_ms)],
  ["latency-p99", "Latency p99", (t) => fmtMs(t.latency_p99_ms)],
  ["ttft-p50", "TTFT p50", (t) => fmtMs(t.ttft_p50_ms)],
  ["tokens-per-s", "Output tokens/s", (t) => fmtRate(t.output_tokens_per_s),
    (t) => `${fmtInt(t.output_tokens)} tokens out`],
  ["error-rate", "Error rate", (t) => fmtPct(ratio(t.errors, t.requests)),
    (t) => `${fmtInt(t.errors)} errors`],
  ["availability", "Availability", (t) => fmtPct(t.availability),
    (t) => `${fmtInt(t.server_errors)} server errors`],
  ["cost", "Cost", (t) => fmtCost(t.cost)],
  ["guard-rate", "Guard hit rate", (t) => fmtPct(ratio(t.guarded, t.requests)),
    (t) => `${fmtInt(t.guarded)} guarded`],
  ["blocked", "Blocked", (t) => fmtInt(t.guard_blocked)],
];

/** Text inputs #filter-NAME with <datalist> suggestions; a non-admin's team is fixed. */
function filterInputs(names, values) {
  const inputs = {};
  const fields = names.map((name) => {
    const pinned = name === "team" && !IS_ADMIN;
    inputs[name] = h("input", { type: "text", list: `list-${name}`, autocomplete: "off",
      value: pinned ? ds.team : values[name] || "", disabled: pinned });
    return h("div", {}, field(`filter-${name}`, LABELS[name], inputs[name],
      pinned ? "Your key reads its own team only" : null), h("datalist", { id: `list-${name}` }));
  });
  return { fields, inputs };
}

/** Values seen lately for each filter, as <datalist> suggestions: the 200 most used of
 * each dimension over the last hour at most (values and counts, no metrics). */
async function fillSuggestions(since) {
  const dims = ["model", "deployment", "key_id", "user", ...(IS_ADMIN ? ["team"] : [])];
  const window = since === "15m" ? since : "1h";
  await Promise.all(dims.map(async (dimension) => {
    const res = await api("/api/stats/values",
      { params: { since: window, dimension, limit: 200 } })
      .catch((err) => console.warn("suggestions:", err.message));
    const seen = (res?.data || []).map((row) => row.value).filter((v) => v != null);
    const list = $(`#list-${dimension}`);
    if (list) clear(list, seen.sort().map((v) => h("option", { value: v })));
  }));
}

const activeFilters = (inputs) => Object.fromEntries(Object.entries(inputs)
  .filter(([, el]) => !el.disabled && el.value.trim()).map(([k, el]) => [k, el.value.trim()]));

function renderOverview() {
  const q = urlParams();
  let range = rangeOf(q.range, "1h");
  let buckets = [];
  let bucketS = range[2];
  const { fields, inputs } = filterInputs(["model", "deployment", "key_id", "team", "user"], q);
  const tiles = h("dl", { id: "tiles", class: "tiles", "aria-live": "off" },
    TILES.map(([id, label]) => h("div", { class: "tile", "data-testid": `tile-${id}` },
      h("dt", { text: label }),
      h("dd", { class: "tile-value", "data-testid": `tile-${id}-value`, text: dash }),
      h("dd", { class: "tile-sub muted" }))));
  const status = statusRow("overview");
  const openBucket = (idx) => {
    const b = buckets[idx];
    const until = b && b.ts + bucketS;
    if (b) location.assign(tracesHref({ since: b.ts, until, ...activeFilters(inputs) }));
  };
  const charts = CHARTS.map((def) => makeChart(def, openBucket));
  const form = h("form", { class: "controls", id: "overview-form", role: "search",
    "aria-label": "Range and filters" },
  rangeSelect(range[0], (v) => { range = rangeOf(v, "1h"); changed(true); }), fields,
  h("div", { class: "field field-button" },
    h("button", { type: "submit", id: "apply-filters", text: "Apply" })));
  clear(page(), form, status.el, tiles,
    h("div", { class: "charts", "aria-live": "off" }, charts.map((c) => c.el)));

  const load = () => attempt(status.slot, async () => {
    const filters = activeFilters(inputs);
    const stats = await api("/api/stats",
      { params: { since: range[0], bucket: range[2], ...filters } });
    const t = stats.totals || {};
    bucketS = stats.bucket_s || range[2];
    buckets = stats.buckets || [];
    for (const [id, , value, sub] of TILES) {
      const tile = $(`[data-testid=tile-${id}]`, tiles);
      $(".tile-value", tile).textContent = value(t);
      $(".tile-sub", tile).textContent = sub ? sub(t) : "";
    }
    const href = tracesHref({ since: Math.floor(stats.since), until: Math.ceil(stats.until),
      ...filters });
    const summary = `${range[1]}: ${fmtInt(t.requests)} requests, ${fmtInt(t.errors)} errors. `
      + "Select a point to open its traces.";
    for (const chart of charts) chart.update(buckets, summary, href);
    status.ok();
  });
  const refresh = live(load);
  function changed(rangeChanged) {
    const state = { range: range[0] === "1h" ? null : range[0], ...activeFilters(inputs) };
    history.replaceState(null, "", location.pathname + qs(state));
    if (rangeChanged) fillSuggestions(range[0]);
    refresh();
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); changed(); });
  for (const input of Object.values(inputs)) input.addEventListener("change", () => changed());
  fillSuggestions(range[0]);
}

// ---------------------------------------------------------------------- traces
const STATUS_OPTIONS = [["", "Any"], ["2xx", "2xx success"], ["4xx", "4xx client error"],
  ["5xx", "5xx server error"], ["error", "Any error"]];
const GUARD_OPTIONS = [["", "Any (or none)"], ["any", "Guarded (any action)"],
  ["block", "Blocked"], ["redact", "Redacted"], ["pseudonymize", "Pseudonymized"],
  ["flag", "Flagged"]];
const timeHint = (v) => (v && isNum(Number(v)) ? `= ${fmtTime(Number(v))}`
  : "Epoch seconds, ISO 8601, or 15m, 24h, 7d");

function tracesForm(values, onSubmit) {
  const dims = ["model", "deployment", "key_id", ...(IS_ADMIN ? ["team"] : []), "user"];
  const { fields, inputs } = filterInputs(dims, values);
  const input = (name, props) => (inputs[name] = h("input",
    { type: "text", value: values[name] || "", ...props }));
  inputs.status = select(STATUS_OPTIONS, values.status);
  inputs.guard = select(GUARD_OPTIONS, values.guard);
  const reset = () => {
    for (const el of Object.values(inputs)) if (!el.disabled) el.value = "";
    onSubmit();
  };
  const form = h("form", { id: "traces-form", class: "controls", role: "search",
    "aria-label": "Trace filters", onsubmit: (e) => { e.preventDefault(); onSubmit(); } },
  field("filter-q", "Text", input("q", { type: "search" })), fields,
  field("filter-session", "Session", input("session")),
  field("filter-status", "Status", inputs.status),
  field("filter-guard", "Guard action", inputs.guard),
  field("filter-min_latency_ms", "Min latency (ms)",
    input("min_latency_ms", { type: "number", min: "0", step: "any" })),
  field("filter-max_confidence", "Max confidence (0-1)",
    input("max_confidence", { type: "number", min: "0", max: "1", step: "any" }),
    "Answers whose mean token probability is at most this (logprobs only)"),
  field("filter-since", "Since", input("since", { placeholder: "e.g. 24h" }),
    timeHint(values.since)),
  field("filter-until", "Until", input("until", { placeholder: "now" }), timeHint(values.until)),
  h("div", { class: "field field-button" },
    h("button", { type: "submit", id: "apply-filters", text: "Apply filters" }),
    button("clear-filters", "Clear", { class: "secondary", onclick: reset })));
  return { form, read: () => activeFilters(inputs) };
}

function previewCell(row) {
  const p = row.preview || {};
  if (!p.input && !p.output) {
    return h("span", { class: "muted", text: row.error || "(no content kept)" });
  }
  return [h("span", { class: "preview-in", text: p.input || "" }),
    p.output ? h("span", { class: "preview-out muted", text: `→ ${p.output}` }) : null];
}

const TRACE_COLUMNS = [
  ["Time", traceLink, "nowrap"], ["Model", (r) => text(r.model)],
  ["Deployment", (r) => text(r.deployment)], ["Status", statusBadge],
  ["Guard", (r) => (r.guard_action ? actionBadge(r.guard_action) : "")],
  ["Latency", (r) => fmtMs(r.latency_ms), "num"], ["TTFT", (r) => fmtMs(r.ttft_ms), "num"],
  ["Tokens in / out", (r) => `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`, "num"],
  ["Cost", (r) => fmtCost(r.cost), "num"], ["User", (r) => text(r.user)],
  ["Team", (r) => text(r.team)], ["Preview", previewCell, "preview"],
];

function renderTraces() {
  const slot = h("div", { id: "traces-error" });
  const list = dataTable("traces-table", "Traces, newest first", TRACE_COLUMNS,
    "No traces match these filters.");
  const pages = pager("Trace pages", ["newer", "Newer"], ["older", "Older"], load);
  const formSlot = h("div");
  let form;
  const restart = () => { pages.reset(); load(); };
  const newForm = () => {
    form = tracesForm(urlParams(), submit);
    clear(formSlot, form.form);
    fillSuggestions("24h");
  };
  newForm();
  clear(page(), formSlot, slot, list.el, pages.el);

  async function load() {
    const params = { ...form.read(), cursor: pages.cursor(), limit: 50 };
    const res = await attempt(slot, () => api("/api/traces", { params }));
    list.set(res?.data || [], (r) => ({ "data-testid": `trace-row-${r.id}` }));
    pages.done(res?.next_cursor);
  }
  function submit() {
    history.pushState(null, "", location.pathname + qs(form.read()));
    restart();
  }
  window.addEventListener("popstate", () => { newForm(); restart(); });
  load();
}

// ----------------------------------------------------------------------- trace
const linkTo = (name, value) => (value == null ? null
  : h("a", { href: tracesHref({ [name]: value }), text: value }));
const code = (v) => (v != null && (typeof v !== "object" || Object.keys(v).length)
  ? h("code", { text: typeof v === "string" ? v : json(v) }) : null);
const maybe = (v, fmt) => (v == null ? null : fmt(v));

const confidenceText = (c) => (c && typeof c.mean_logprob === "number"
  ? `mean p ${Math.exp(c.mean_logprob).toFixed(3)} · lowest p ${Number(c.min_prob).toFixed(3)}`
    + ` · perplexity ${Number(c.perplexity).toFixed(2)}`
    + (typeof c.entropy === "number" ? ` · entropy ${c.entropy.toFixed(2)} nats` : "")
    + ` (${fmtInt(c.tokens)} tokens)` : null);

function traceFacts(t) {
  const tokens = `${fmtInt(t.input_tokens)} in / ${fmtInt(t.output_tokens)} out`
    + (t.cached_tokens ? ` (${fmtInt(t.cached_tokens)} cached)` : "");
  const pairs = [
    ["Time", fmtTime(t.ts)], ["Id", code(t.id)], ["Endpoint", t.endpoint],
    ["Operation", t.operation], ["Model", linkTo("model", t.model)],
    ["Model version", t.model_version], ["Deployment", linkTo("deployment", t.deployment)],
    ["Provider", t.provider], ["Key", linkTo("key_id", t.key_id)],
    ["Team", linkTo("team", t.team)], ["User", linkTo("user", t.user)],
    ["Session", linkTo("session", t.session)], ["Status", statusBadge(t)], ["Error", t.error],
    ["Finish reason", t.finish_reason], ["Latency", fmtMs(t.latency_ms)],
    ["TTFT", maybe(t.ttft_ms, fmtMs)], ["Time per output token", maybe(t.tpot_ms, fmtMs)],
    ["Gateway overhead", fmtMs(t.overhead_ms)], ["Queued", t.queue_ms ? fmtMs(t.queue_ms) : null],
    ["Tokens", tokens], ["Cost", fmtCost(t.cost)], ["Stream", t.stream ? "yes" : "no"],
    ["Attempts", maybe(t.attempts, String)], ["Fallback", t.fallback ? "yes" : null],
    ["Guard action", t.guard_action], ["Content mode", t.content_mode],
    ["Confidence", confidenceText(t.metadata?.confidence)],
    ["Parameters", code(t.params)], ["Metadata", code(t.metadata)],
    ["OpenTelemetry trace", code(t.trace_id)],
  ];
  return h("dl", { id: "trace-facts", class: "facts" }, pairs
    .filter(([, v]) => v != null && v !== "")
    .map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", {}, v))));
}

const pre = (v) => h("pre", { class: "body-text",
  text: typeof v === "string" ? v : JSON.stringify(v, null, 2) });

/** A message's content: a string, or parts (text parts as text, others as JSON). */
const contentText = (c) => (c == null || typeof c === "string" || !Array.isArray(c) ? c
  : c.map((p) => (p?.type === "text" && typeof p.text === "string" ? p.text
    : JSON.stringify(p, null, 2))).join("\n"));

/** An answer's tokens, each shaded by how likely the model found it (kept on full-mode
 * traces when the client asked for logprobs); the probability is in each one's title. */
function tokenView(tokens) {
  const band = (p) => (p < 0.5 ? "tok-low" : p < 0.9 ? "tok-mid" : "tok-high");
  const shown = tokens.filter((t) => typeof t?.logprob === "number");
  if (!shown.length) return null;
  const low = shown.filter((t) => Math.exp(t.logprob) < 0.5).length;
  return h("div", { id: "token-view", class: "tokens" },
    h("div", { class: "msg-role",
      text: `Confidence per token (${fmtInt(low)} of ${fmtInt(shown.length)} below 50 %)` }),
    h("p", { class: "token-text" }, shown.map((t) => {
      const p = Math.exp(t.logprob);
      return h("span", { class: `tok ${band(p)}`, title: `p = ${p.toFixed(3)}`,
        "data-testid": "token", text: String(t.token ?? "") });
    })));
}

function message(m) {
  if (!m || typeof m !== "object") return h("li", { class: "msg" }, pre(m));
  const who = String(m.role || "message");
  const role = who[0].toUpperCase() + who.slice(1) + (m.name ? ` (${m.name})` : "")
    + (m.tool_call_id ? ` · answer to tool call ${m.tool_call_id}` : "");
  const content = contentText(m.content);
  return h("li", { class: `msg msg-${who.replace(/[^a-z]/gi, "")}` },
    h("div", { class: "msg-role", text: role }), content != null ? pre(content) : null,
    m.tool_calls ? [h("div", { class: "msg-role", text: "Tool calls" }), pre(m.tool_calls)] : null,
    m.refusal ? pre(`Refusal: ${m.refusal}`) : null,
    Array.isArray(m.logprobs) ? tokenView(m.logprobs) : null);
}

/** A body as stored: chat messages, prompt strings, or any JSON (embeddings' summary). */
function bodyView(value, mode) {
  if (value == null) {
    return h("p", { class: "muted", text: mode === "metadata"
      ? "Not kept: this trace's content mode is metadata (no bodies are stored)."
      : "Nothing was stored for this part." });
  }
  const isChat = (v) => v && typeof v === "object" && !Array.isArray(v) && "role" in v;
  const items = Array.isArray(value) ? value : [value];
  if (items.length && (items.every(isChat) || items.every((v) => typeof v === "string"))) {
    return h("ol", { class: "messages" }, items.map(message));
  }
  return pre(value);
}

function waterfall(t) {
  const spans = Array.isArray(t.spans) ? t.spans : [];
  if (!spans.length) return h("p", { class: "muted", id: "waterfall", text: "No spans recorded." });
  const end = Math.max(t.latency_ms || 0,
    ...spans.map((s) => (s.start_ms || 0) + (s.duration_ms || 0)));
  const pct = (ms) => `${((ms || 0) / (end || 1)) * 100}%`;
  const attrs = (s) => Object.entries(s.attrs || {})
    .map(([k, v]) => `${k}=${typeof v === "object" ? json(v) : v}`).join(" ");
  return h("ol", { id: "waterfall", class: "waterfall", "aria-label": `Spans over ${fmtMs(end)}` },
    spans.map((s, i) => {
      const bar = h("span", { class: "wf-bar", "aria-hidden": "true" });
      bar.style.left = pct(s.start_ms);
      bar.style.width = pct(Math.max(s.duration_ms || 0, end * 0.004));
      return h("li", { class: "wf-row", "data-testid": `span-${i}` },
        h("span", { class: "wf-name", text: s.name || "span" }),
        h("span", { class: "wf-track" }, bar),
        h("span", { class: "wf-ms", text: `${fmtMs(s.duration_ms)} at +${fmtMs(s.start_ms)}` }),
        s.attrs ? h("span", { class: "wf-attrs muted small", text: attrs(s) }) : null);
    }));
}

function guardsTable(t) {
  const guards = Array.isArray(t.guards) ? t.guards : [];
  if (!guards.length) {
    return h("p", { class: "muted", id: "trace-guards", text: "No guard acted on this request." });
  }
  const tbl = dataTable("trace-guards", "Guard decisions", [
    ["Stage", (g) => text(g.stage)], ["Scanner", (g) => text(g.scanner)],
    ["Action", (g) => actionBadge(g.action)],
    ["Kinds", (g) => (Array.isArray(g.kinds) ? g.kinds.join(", ") : text(g.kinds))],
    ["Score", (g) => (isNum(g.score) ? g.score.toFixed(3) : dash), "num"],
    ["Count", (g) => fmtInt(g.count), "num"], ["Where", (g) => text(g.where)],
    ["Time", (g) => fmtMs(g.ms), "num"], ["Error", (g) => text(g.error)]], "");
  tbl.set(guards);
  return tbl.el;
}

function feedbackList(items) {
  if (!items.length) {
    return h("p", { id: "feedback-list", class: "muted", text: "No feedback yet." });
  }
  return h("ul", { id: "feedback-list", class: "feedback" }, items.map((f) => h("li", {},
    f.value ? badge(`thumbs ${f.value}`, f.value === "up" ? "ok" : "err") : null,
    f.score != null ? ` score ${f.score}` : null, f.comment ? ` ${f.comment}` : null,
    h("span", { class: "muted small",
      text: ` · ${[f.user, f.key, fmtTime(f.ts)].filter(Boolean).join(" · ")}` }))));
}

function feedbackForm(traceId, onSaved) {
  if (!GRANTS.has("feedback")) {
    return h("p", { class: "muted", text: "This role may read feedback but not send it." });
  }
  const status = h("div", { id: "feedback-status", role: "status" });
  const radio = (id, value, label) => [h("input", { type: "radio", name: "value", id, value }),
    h("label", { for: id, class: "radio", text: label })];
  const comment = h("textarea", { rows: "3", maxlength: "10000" });
  const send = h("button", { type: "submit", id: "fb-submit", text: "Send feedback" });
  const submit = async (e) => {
    e.preventDefault();
    const value = $("input[name=value]:checked", e.target)?.value || null;
    // the idempotency key names who signed in: sending again updates their feedback
    const key = `ui:${$(".who-name")?.textContent.trim() || "dashboard"}`.slice(0, 128);
    const data = { request_id: traceId, key, value, comment: comment.value.trim() || null };
    send.disabled = true;
    const saved = await attempt(status, () => api("/api/feedback", { method: "POST", data }));
    send.disabled = false;
    if (!saved) return;
    const what = saved.value ? ` (thumbs ${saved.value})` : "";
    await attempt(status, onSaved); // the list, as stored
    const note = h("p", { class: "ok", text: `Feedback saved${what}.` });
    if (!status.childElementCount) clear(status, note);
  };
  return h("form", { id: "feedback-form", class: "stack", onsubmit: submit },
    h("fieldset", {}, h("legend", { text: "Rating" }),
      radio("fb-up", "up", "Thumbs up"), radio("fb-down", "down", "Thumbs down")),
    field("fb-comment", "Comment (optional)", comment), h("div", {}, send), status);
}

const traceMissing = (id) => h("div", { id: "trace-missing", class: "card", role: "alert" },
  h("h2", { text: "No such trace (or not yours)" }),
  h("p", { text: `No trace with id “${id}” is stored for you: it may be another team's, past `
    + "retention, or still on its way to the store (a second or so); reload to try again." }),
  h("p", {}, h("a", { href: "/ui/traces", text: "Back to traces" })));

async function renderTrace() {
  const id = ds.trace || "";
  const path = `/api/traces/${encodeURIComponent(id)}`;
  let t;
  try {
    if (!id) throw apiError(404, "No trace id in this address");
    t = await api(path);
  } catch (err) {
    clear(page(), err.status === 404 ? traceMissing(id) : errorBox(err, "trace-error"));
    return;
  }
  const feedback = h("div", {}, feedbackList(t.feedback || []));
  const reload = async () => clear(feedback, feedbackList((await api(path)).feedback || []));
  const body = (name, value) => section(name, name.toLowerCase(),
    h("div", { id: `trace-${name.toLowerCase()}` }, bodyView(value, t.content_mode)));
  clear(page(),
    h("p", {}, h("a", { href: "/ui/traces", text: "← All traces" })),
    t.body_error ? h("div", { class: "error", role: "alert",
      text: `The stored body could not be opened: ${t.body_error}` }) : null,
    section("Facts", "facts", traceFacts(t)),
    section("Timeline", "timeline", waterfall(t)),
    h("div", { class: "two-col" }, body("Input", t.input), body("Output", t.output)),
    section("Guard decisions", "guards", guardsTable(t)),
    section("Feedback", "feedback", feedback, feedbackForm(id, reload)));
}

// ---------------------------------------------------------- deployments, budgets
/** A table of one list endpoint, refreshed live. */
function livePage(prefix, path, tbl, rowProps) {
  const status = statusRow(prefix);
  clear(page(), status.el, h("div", { "aria-live": "off" }, tbl.el));
  live(() => attempt(status.slot, async () => {
    tbl.set((await api(path)).data || [], rowProps);
    status.ok();
  }));
}

const yesNo = (v) => (v == null ? dash : badge(v ? "yes" : "no", v ? "ok" : "err"));
const breaker = (s) => badge(text(s), s === "closed" ? "ok" : s === "open" ? "err" : "warn");

function renderDeployments() {
  const tbl = dataTable("deployments-table", "Deployments", [
    ["Name", (d) => text(d.name), "head"], ["Alias", (d) => text(d.alias)],
    ["Kind", (d) => text(d.kind)], ["Ready", (d) => yesNo(d.ready)],
    ["Available", (d) => yesNo(d.available)], ["Breaker", (d) => breaker(d.breaker)],
    ["In flight", (d) => fmtInt(d.in_flight), "num"], ["Queued", (d) => fmtInt(d.queued), "num"],
    ["Latency (EWMA)", (d) => fmtMs(d.ewma_latency_ms), "num"],
    ["Failures", (d) => `${fmtInt(d.consecutive_failures)} in a row, ${fmtInt(d.failures)} in all`],
  ], "No deployments are configured.");
  livePage("deployments", "/api/deployments", tbl,
    (d) => ({ "data-testid": `deployment-${d.name}` }));
}

function spendBar(b) {
  const used = b.limit > 0 ? (b.spent + (b.reserved || 0)) / b.limit : 0;
  const near = used >= (b.soft ? b.soft / b.limit : 0.8);
  const fill = h("span", { class: `bar-fill${b.exceeded ? " over" : near ? " near" : ""}` });
  fill.style.width = `${Math.min(used, 1) * 100}%`;
  return h("div", { class: "bar-cell", "data-testid": `budget-bar-${b.scope}-${b.name}` },
    h("span", { class: "bar", "aria-hidden": "true" }, fill),
    h("span", { class: "small", text: fmtPct(used) }));
}

function renderBudgets() {
  const money = (key) => (b) => fmtCost(b[key]);
  livePage("budgets", "/api/budgets", dataTable("budgets-table", "Budgets", [
    ["Scope", (b) => text(b.scope)], ["Name", (b) => text(b.name), "head"],
    ["Period", (b) => text(b.period)], ["Limit", money("limit"), "num"],
    ["Soft limit", money("soft"), "num"], ["Spent", money("spent"), "num"],
    ["Reserved", money("reserved"), "num"],
    ["Remaining", (b) => fmtCost(Math.max(0, b.limit - b.spent - (b.reserved || 0))), "num"],
    ["Used", spendBar], ["Currency", (b) => text(b.currency)],
    ["Resets", (b) => (b.resets_at ? fmtShort(b.resets_at) : "never"), "nowrap"],
    ["State", (b) => (b.exceeded ? badge("exceeded", "err") : badge("within", "ok"))],
    ["Shared", (b) => (b.shared ? "all replicas" : "this worker")],
  ], "No budgets are in use."));
}

// ---------------------------------------------------------------------- guards
const GUARD_ACTIONS = [["block", "Blocked"], ["redact", "Redacted"],
  ["pseudonymize", "Pseudonymized"], ["flag", "Flagged"]];

const guardTile = (id, label, value, sub) => h("div",
  { class: "tile", "data-testid": `guard-count-${id}` }, h("dt", { text: label }),
  h("dd", { class: "tile-value", text: value }),
  sub ? h("dd", { class: "tile-sub muted", text: sub }) : null);

const scanners = (r) => (r.guards || []).filter((g) => g.action && g.action !== "log")
  .map((g) => `${g.scanner}: ${g.action}${g.kinds?.length ? ` (${g.kinds.join(", ")})` : ""}`)
  .join("; ") || dash;

function renderGuards() {
  let range = rangeOf(urlParams().range, "24h");
  const status = statusRow("guards");
  const counts = h("dl", { id: "guard-counts", class: "tiles", "aria-live": "off" });
  const tbl = dataTable("guarded-table", "Guarded traces, newest first", [
    ["Time", traceLink, "nowrap"], ["Action", (r) => actionBadge(r.guard_action)],
    ["Scanners", scanners], ["Status", statusBadge], ["Model", (r) => text(r.model)],
    ["User", (r) => text(r.user)], ["Team", (r) => text(r.team)],
    ["Preview (redacted)", previewCell, "preview"]], "No guarded traces yet.");
  const load = () => attempt(status.slot, async () => {
    const [stats, traces] = await Promise.all([
      api("/api/stats", { params: { since: range[0], group_by: "guard_action" } }),
      api("/api/traces", { params: { guard: "any", limit: 20 } })]);
    const by = Object.fromEntries((stats.groups || [])
      .map((g) => [g.key.guard_action, g.requests]));
    const t = stats.totals || {};
    clear(counts, GUARD_ACTIONS.map(([a, label]) => guardTile(a, label, fmtInt(by[a] || 0))),
      guardTile("rate", "Guard hit rate", fmtPct(ratio(t.guarded, t.requests)),
        `${fmtInt(t.guarded)} of ${fmtInt(t.requests)} requests`));
    tbl.set(traces.data || []);
    status.ok();
  });
  const refresh = live(load);
  const onRange = (v) => {
    range = rangeOf(v, "24h");
    history.replaceState(null, "", location.pathname + qs({ range: range[0] }));
    refresh();
  };
  clear(page(), h("div", { class: "controls" }, rangeSelect(range[0], onRange)), status.el,
    section("Guard actions", "guard-actions", counts),
    section("Latest guarded traces", "guarded", h("div", { "aria-live": "off" }, tbl.el),
      h("p", {}, h("a", { href: tracesHref({ guard: "any" }), text: "All guarded traces" }))));
}

// ------------------------------------------------------------------------ keys
// The roles each role may grant (the API refuses more, and says so)
const GRANTABLE = { admin: ["user", "viewer", "developer", "admin"],
  developer: ["user", "viewer", "developer"] };

function keyForm(onCreated) {
  const team = h("input", { type: "text", value: IS_ADMIN ? "" : ds.team, disabled: !IS_ADMIN });
  const name = h("input", { type: "text", required: true, maxlength: "128" });
  const role = select((GRANTABLE[ds.role] || GRANTABLE.developer).map((r) => [r, r]), "user");
  const user = h("input", { type: "text", maxlength: "128" });
  const models = h("input", { type: "text", placeholder: "all models" });
  const days = h("input", { type: "number", min: "0", step: "any", placeholder: "never" });
  const slot = h("div", { id: "key-form-error" });
  const submit = async (e) => {
    e.preventDefault();
    const data = { name: name.value.trim() || null, role: role.value };
    if (IS_ADMIN && team.value.trim()) data.team = team.value.trim();
    if (user.value.trim()) data.user = user.value.trim();
    const list = models.value.split(",").map((m) => m.trim()).filter(Boolean);
    if (list.length) data.models = list;
    if (Number(days.value) > 0) data.expires_in = Number(days.value) * 86400;
    const created = await attempt(slot, () => api("/api/keys", { method: "POST", data }));
    if (!created) return;
    e.target.reset();
    team.value = IS_ADMIN ? "" : ds.team;
    onCreated(created, "created");
  };
  return h("form", { id: "key-form", class: "controls", onsubmit: submit },
    field("key-name", "Name", name), field("key-role", "Role", role),
    field("key-team", "Team", team, IS_ADMIN ? "Developer and viewer keys need one" : "Your team"),
    field("key-user", "User (optional)", user),
    field("key-models", "Models (comma separated)", models, "Empty: every model"),
    field("key-expiry-days", "Expires in (days)", days, "Empty: never"),
    h("div", { class: "field field-button" },
      h("button", { type: "submit", id: "create-key", text: "Create key" })), slot);
}

/** The new key's secret, once, with a copy button. */
function secretBox(slot, key, verb) {
  const value = h("code", { "data-testid": "key-secret-value", class: "secret-value",
    text: key.key });
  const note = h("span", { role: "status", class: "small" });
  const copy = () => navigator.clipboard.writeText(key.key).then(
    () => { note.textContent = "Copied."; },
    () => {
      getSelection().selectAllChildren(value);
      note.textContent = "Copying failed: the key is selected, press Ctrl+C.";
    });
  const title = h("h2", { id: "key-secret-title", tabindex: "-1",
    text: `Key ${verb}: ${key.name || key.id}` });
  clear(slot, h("section", { id: "key-secret", class: "secret", "aria-labelledby": title.id },
    title,
    h("p", { class: "warn-text" }, h("strong", { text: "Copy it now: " }),
      "this secret will not be shown again. Keep it somewhere safe."),
    h("div", { class: "secret-row" }, value,
      button("copy-secret", "Copy", { onclick: copy }), note),
    button("dismiss-secret", "I have stored it", { class: "secondary",
      onclick: () => slot.replaceChildren() })));
  title.focus();
}

function keyActions(k, act) {
  if (k.status === "revoked") return dash;
  const one = (verb, label, cls) => h("button", { type: "button", class: `${cls} small`,
    "data-testid": `${verb}-${k.id}`, "aria-label": `${label} key ${k.name || k.id}`,
    text: label, onclick: () => act(k, verb) });
  return h("div", { class: "actions" },
    one("rotate", "Rotate", "secondary"), one("revoke", "Revoke", "danger"));
}

function renderKeys() {
  const slot = h("div", { id: "keys-error" });
  const secret = h("div", {});
  const act = async (key, verb) => {
    const label = `${key.name || key.id} (${key.id})`;
    if (!confirm(verb === "revoke" ? `Revoke key ${label}? It stops working at once.`
      : `Rotate key ${label}? It gets a new secret and the old one stops working.`)) return;
    const path = `/api/keys/${encodeURIComponent(key.id)}`;
    await attempt(slot, async () => {
      if (verb === "revoke") await api(path, { method: "DELETE" });
      else secretBox(secret, await api(`${path}/rotate`, { method: "POST" }), "rotated");
    });
    reload();
  };
  const status = (k) => badge(k.status, { active: "ok", revoked: "err" }[k.status] || "warn");
  const idAndHint = (k) => [code(k.id), h("br"), h("code", { class: "muted", text: k.hint })];
  const tbl = dataTable("keys-table", "Virtual keys", [
    ["Name", (k) => text(k.name), "head"], ["Id and hint", idAndHint],
    ["Role", (k) => text(k.role)], ["Team", (k) => text(k.team)], ["User", (k) => text(k.user)],
    ["Models", (k) => (k.models ? k.models.join(", ") : "all")],
    ["Created", (k) => fmtShort(k.created_at), "nowrap"],
    ["Expires", (k) => (k.expires_at ? fmtShort(k.expires_at) : "never"), "nowrap"],
    ["Status", status], ["Actions", (k) => keyActions(k, act)],
  ], "No keys yet.");
  const reload = () => attempt(slot, async () => {
    tbl.set((await api("/api/keys")).data || [], (k) => ({ "data-testid": `key-row-${k.id}` }));
  });
  const created = (key, verb) => { secretBox(secret, key, verb); reload(); };
  clear(page(), secret, section("Create a key", "create", keyForm(created)),
    section("Keys", "keys", slot, tbl.el));
  reload();
}

// ----------------------------------------------------------------------- audit
function verdict(v) {
  const facts = `${fmtInt(v.entries)} entries, last seq ${v.last_seq}, `
    + `${fmtInt(v.heads)} signed heads.`;
  return h("div", { class: `verdict ${v.ok ? "ok" : "error"}`,
    "data-testid": v.ok ? "audit-ok" : "audit-broken" },
  h("p", {}, h("strong", { text: v.ok ? "Chain intact: " : "Chain broken: " }), facts),
  v.problems?.length ? h("ul", {}, v.problems.map((p) => h("li", { text: p }))) : null);
}

function renderAudit() {
  const slot = h("div", { id: "audit-error" });
  const result = h("div", { id: "audit-result", role: "status" });
  const tbl = dataTable("audit-table", "Audit log entries, newest first", [
    ["Seq", (e) => String(e.seq), "head"], ["Time", (e) => fmtShort(e.ts), "nowrap"],
    ["Actor", (e) => text(e.actor)], ["Action", (e) => text(e.action)],
    ["Target", (e) => text(e.target)], ["Detail", (e) => code(e.detail) || dash, "detail"],
  ], "The audit log is empty.");
  const pages = pager("Audit pages", ["audit-newer", "Newer entries"],
    ["audit-older", "Older entries"], load);
  const check = async () => {
    verify.disabled = true;
    clear(result, h("p", { class: "muted", text: "Verifying…" }));
    const v = await attempt(result, () => api("/api/audit/verify")); // errors replace it
    if (v) clear(result, verdict(v));
    verify.disabled = false;
  };
  const verify = button("verify-audit", "Verify chain", { onclick: check });
  clear(page(), h("div", { class: "controls" }, verify, result), slot, tbl.el, pages.el);

  async function load() {
    const before = pages.cursor();
    const params = { order: "desc", limit: 100, ...(before ? { before } : {}) };
    const res = await attempt(slot, () => api("/api/audit", { params }));
    const rows = res?.data || [];
    tbl.set(rows);
    pages.done(res?.next_before, rows.length ? `Entries ${rows[0].seq}–${rows.at(-1).seq}` : "");
  }
  load();
}

// ------------------------------------------------------------------------ boot
const PAGES = {
  overview: renderOverview, traces: renderTraces, trace: renderTrace,
  deployments: renderDeployments, guards: renderGuards, keys: renderKeys,
  budgets: renderBudgets, audit: renderAudit, login: () => $("#key")?.focus(),
};

initTheme();
const draw = PAGES[ds.page];
if (draw) {
  Promise.resolve().then(draw).catch((err) => {
    console.error(err);
    if (page()) clear(page(), errorBox(err));
  });
}
