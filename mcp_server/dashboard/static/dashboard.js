// kubegate dashboard: plain DOM, no build step. Everything it shows comes from the documented REST
// routes and one server-sent events stream (/api/events); text is always set with textContent.
"use strict";

const state = { config: null, me: null, items: {}, open: new Set(), logs: new Map(), events: null };
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function cookie(name) {
  const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("csrf_token");
  const response = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.message) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function notify(message, kind) {
  const notice = $("#notice");
  notice.textContent = message;
  notice.className = kind === "info" ? "info" : "";
  notice.hidden = !message;
}

async function guarded(work) {
  try { notify(""); await work(); } catch (error) {
    if (error.status === 401) return showLogin();
    notify(error.message);
  }
}

const title = (name) => name.replace(/[-_]/g, " ").replace(/^./, (c) => c.toUpperCase());
const itemPath = (kind, id) => kind.itemPath.replace(`{${kind.idField}}`, encodeURIComponent(id));
const when = (stamp) => (stamp ? new Date(stamp).toLocaleString() : "");
const statusOf = (text) => el("span", { class: `status status-${text}`, text: text || "" });

// ---- objects of every kind -------------------------------------------------------------------

function store(kind) { return (state.items[kind.name] ||= new Map()); }

function upsert(kind, object) {
  const map = store(kind);
  map.set(object.id, { ...(map.get(object.id) || {}), ...object });
  render(kind);
}

async function loadKind(kind) {
  const body = await api("GET", `${kind.listPath}?limit=50`);
  const map = new Map();
  for (const object of body[kind.name] || []) map.set(object.id, { ...(store(kind).get(object.id) || {}), ...object });
  state.items[kind.name] = map;
  render(kind);
}

function progress(object) {
  if (typeof object.completedSteps !== "number") return "";
  const total = Array.isArray(object.steps) ? object.steps.length : object.steps;
  return `${object.completedSteps}/${total}`;
}

function render(kind) {
  const body = $(`#kind-${kind.name} tbody`);
  const rows = [...store(kind).values()].sort((a, b) => (b.createdAt || "").localeCompare(a.createdAt || ""));
  body.replaceChildren(...rows.flatMap((object) => rowsFor(kind, object)));
  $(`#kind-${kind.name} .empty`).hidden = rows.length > 0;
}

function rowsFor(kind, object) {
  const open = state.open.has(object.id);
  const detailId = `detail-${object.id}`;
  const actions = el("td", { class: "actions" },
    el("button", { type: "button", "aria-expanded": String(open), "aria-controls": detailId,
      "aria-label": `Details of ${object.name}`, onclick: () => toggle(kind, object.id), text: open ? "Hide" : "Details" }),
    kind.actions.map((verb) => el("button", { type: "button", "aria-label": `${title(verb)} ${object.name}`,
      onclick: () => guarded(() => act(kind, object, verb)), text: title(verb) })),
    kind.deletable ? el("button", { type: "button", class: "danger", "aria-label": `Delete ${object.name}`,
      onclick: () => guarded(() => remove(kind, object)), text: "Delete" }) : null);
  const row = el("tr", { "data-id": object.id, "data-status": object.status },
    el("td", {}, el("strong", { text: object.name || "" }), el("div", { class: "muted", text: object.id })),
    el("td", {}, statusOf(object.status), object.reason && object.status === "failed" ? ` (${object.reason})` : ""),
    el("td", { class: "wide", text: progress(object) }),
    el("td", { class: "wide", text: when(object.createdAt) }), actions);
  if (!open) return [row];
  return [row, el("tr", { class: "detail", id: detailId }, el("td", { colspan: "5" }, detail(kind, object)))];
}

function detail(kind, object) {
  const facts = ["status", "exitCode", "reason", "message", "output", "image", "startedAt", "completedAt"]
    .filter((field) => object[field] !== undefined && object[field] !== null)
    .map((field) => el("div", {}, el("span", { class: "muted", text: `${field}: ` }), String(object[field])));
  const parts = [el("div", { class: "facts" }, facts)];
  if (Array.isArray(object.steps)) parts.push(stepTable(kind, object));
  else if ("status" in object) parts.push(logsBlock(kind, object, null));
  return parts;
}

function stepTable(kind, object) {
  const rows = object.steps.map((step) => {
    const key = `${object.id}/${step.name}`;
    const open = state.logs.has(key);
    const cells = el("tr", { "data-step": step.name, "data-status": step.status },
      el("td", { text: step.name }), el("td", {}, statusOf(step.status)),
      el("td", { text: step.exitCode ?? "" }), el("td", {}, el("code", { text: step.output ?? "" })),
      el("td", {}, el("button", { type: "button", "aria-expanded": String(open),
        "aria-label": `Logs of step ${step.name}`, onclick: () => toggleLogs(kind, object.id, step.name),
        text: open ? "Hide logs" : "Logs" })));
    return open ? [cells, el("tr", {}, el("td", { colspan: "5" }, logText(key)))] : [cells];
  });
  return el("div", { class: "scroll" }, el("table", { class: "steps" },
    el("caption", { class: "sr", text: `Steps of ${object.name}` }),
    el("thead", {}, el("tr", {}, ["Step", "Status", "Exit", "Output", "Logs"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows.flat())));
}

function logsBlock(kind, object, step) {
  const key = step ? `${object.id}/${step}` : object.id;
  const open = state.logs.has(key);
  return el("div", {}, el("button", { type: "button", "aria-expanded": String(open),
    onclick: () => toggleLogs(kind, object.id, step), text: open ? "Hide logs" : "Logs" }), open ? logText(key) : null);
}

function logText(key) {
  const text = state.logs.get(key);
  return el("pre", { class: "logs", "data-logs": key, tabindex: "0", text: text === null ? "loading…" : (text || "(no output yet)") });
}

function toggle(kind, id) {
  if (state.open.has(id)) state.open.delete(id);
  else { state.open.add(id); guarded(() => refresh(kind, id)); }
  render(kind);
}

async function refresh(kind, id) {
  const body = await api("GET", itemPath(kind, id));
  const object = body[kind.singular];
  for (const key of state.logs.keys()) {
    if (key === id) state.logs.set(key, object.logs || "");
    else if (key.startsWith(`${id}/`)) {
      const step = (object.steps || []).find((s) => `${id}/${s.name}` === key);
      state.logs.set(key, (step && step.logs) || "");
    }
  }
  const { logs: _logs, ...rest } = object;
  if (Array.isArray(rest.steps)) rest.steps = rest.steps.map(({ logs: _stepLogs, ...step }) => step);
  upsert(kind, rest);
}

function toggleLogs(kind, id, step) {
  const key = step ? `${id}/${step}` : id;
  if (state.logs.has(key)) { state.logs.delete(key); render(kind); return; }
  state.logs.set(key, null);
  render(kind);
  guarded(() => refresh(kind, id));
}

async function act(kind, object, verb) {
  const body = await api("POST", `${itemPath(kind, object.id)}/${verb}`, {});
  if (body && body[kind.singular]) upsert(kind, body[kind.singular]);
}

async function remove(kind, object) {
  if (!window.confirm(`Delete ${object.name} (${object.id})?`)) return;
  await api("DELETE", itemPath(kind, object.id));
  store(kind).delete(object.id);
  render(kind);
  notify(`Deleted ${object.id}`, "info");
}

// ---- live updates ------------------------------------------------------------------------------

function listen() {
  if (state.events) state.events.close();
  const source = new EventSource("/api/events");
  const live = $("#live");
  state.events = source;
  const kindNamed = (name) => state.config.kinds.find((k) => k.name === name);
  source.addEventListener("ready", () => { live.textContent = "● live"; live.dataset.state = "live"; });
  source.addEventListener("change", (event) => {
    const data = JSON.parse(event.data);
    const kind = kindNamed(data.kind);
    if (!kind) return;
    upsert(kind, data.object);
    if ([...state.logs.keys()].some((key) => key === data.id || key.startsWith(`${data.id}/`))) guarded(() => refresh(kind, data.id));
  });
  source.addEventListener("removed", (event) => {
    const data = JSON.parse(event.data);
    const kind = kindNamed(data.kind);
    if (kind && store(kind).delete(data.id)) render(kind);
  });
  source.addEventListener("resync", () => guarded(loadAll));
  source.addEventListener("unauthorized", () => { source.close(); showLogin(); });
  source.onerror = () => { live.textContent = "reconnecting…"; live.dataset.state = "down"; };
}

// ---- API keys ----------------------------------------------------------------------------------

async function loadKeys() {
  const body = await api("GET", "/api/api-keys");
  $("#key-table tbody").replaceChildren(...body.apiKeys.map((key) => el("tr", { "data-key": key.id },
    el("td", { text: key.name }), el("td", {}, el("code", { text: key.prefix })),
    el("td", { class: "wide", text: when(key.createdAt) }), el("td", { text: when(key.lastUsedAt) || "never" }),
    el("td", { class: "wide", text: key.expiresAt ? when(key.expiresAt) : "never" }),
    el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `Revoke ${key.name}`,
      onclick: () => guarded(() => revokeKey(key)), text: "Revoke" })))));
}

async function createKey(event) {
  event.preventDefault();
  const name = $("#key-name").value.trim();
  const body = await api("POST", "/api/api-keys", { name });
  $("#new-key-value").textContent = body.apiKey.key;
  $("#copied").textContent = "";
  $("#new-key").hidden = false;
  $("#key-name").value = "";
  $("#copy-key").focus();
  await loadKeys();
}

async function copyKey() {
  const value = $("#new-key-value").textContent;
  try { await navigator.clipboard.writeText(value); $("#copied").textContent = "Copied"; } catch (_) {
    const range = document.createRange();
    range.selectNodeContents($("#new-key-value"));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    $("#copied").textContent = "Selected: press Ctrl+C";
  }
}

async function revokeKey(key) {
  if (!window.confirm(`Revoke the key ${key.name}? Anything using it stops working at once.`)) return;
  await api("DELETE", `/api/api-keys/${encodeURIComponent(key.id)}`);
  if ($("#new-key-value").textContent.startsWith(key.prefix)) { $("#new-key").hidden = true; $("#new-key-value").textContent = ""; }
  notify(`Revoked ${key.name}`, "info");
  await loadKeys();
}

// ---- starting work -----------------------------------------------------------------------------

async function pickExample() {
  const name = $("#start-example").value;
  if (!name) return;
  const example = state.config.examples.find((e) => e.name === name);
  const response = await fetch(`/dashboard/examples/${encodeURIComponent(name)}`);
  $("#start-body").value = await response.text();
  $("#start-kind").value = example.kind;
}

async function start(event) {
  event.preventDefault();
  const kind = state.config.kinds.find((k) => k.name === $("#start-kind").value);
  let body;
  try { body = JSON.parse($("#start-body").value); } catch (error) { notify(`The body is not valid JSON: ${error.message}`); return; }
  const created = (await api("POST", kind.listPath, body))[kind.singular];
  upsert(kind, created);
  notify(`Started ${kind.singular} ${created.id}`, "info");
  document.querySelector(`tr[data-id="${created.id}"] button`)?.focus();
}

// ---- session -----------------------------------------------------------------------------------

function showLogin() {
  if (state.events) { state.events.close(); state.events = null; }
  state.me = null;
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#live").textContent = "";
  const { oauth, dev } = state.config.login;
  $("#login").hidden = false;
  $("#login-oauth").hidden = !oauth;
  $("#dev-login").hidden = !dev;
  $("#login-none").hidden = oauth || dev;
}

async function devLogin(event) {
  event.preventDefault();
  await api("POST", "/auth/dev-login", { email: $("#dev-email").value });
  await enter();
}

async function logout() {
  await api("POST", "/auth/logout");
  state.items = {};
  state.open.clear();
  state.logs.clear();
  showLogin();
  notify("Logged out", "info");
}

async function loadAll() {
  await Promise.all([...state.config.kinds.map(loadKind), loadKeys()]);
}

async function enter() {
  try { state.me = await api("GET", "/auth/me"); } catch (error) {
    if (error.status === 401) return showLogin();
    throw error;
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = state.me.user.email;
  listen();
  await loadAll();
}

function buildKinds() {
  $("#kinds").replaceChildren(...state.config.kinds.map((kind) => el("section", { id: `kind-${kind.name}`, "aria-labelledby": `title-${kind.name}` },
    el("h2", { id: `title-${kind.name}`, text: title(kind.name) }),
    el("p", { class: "empty muted", text: `No ${kind.name} yet.` }),
    el("div", { class: "scroll" }, el("table", { class: "objects" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Name" }), el("th", { scope: "col", text: "Status" }),
        el("th", { scope: "col", class: "wide", text: "Progress" }), el("th", { scope: "col", class: "wide", text: "Created" }),
        el("th", { scope: "col" }, el("span", { class: "sr", text: "Actions" })))),
      el("tbody", {}))))));
  const creatable = state.config.kinds.filter((k) => k.creatable);
  $("#start").hidden = creatable.length === 0;
  $("#start-kind").replaceChildren(...creatable.map((k) => el("option", { value: k.name, text: title(k.singular) })));
  $("#start-example").append(...state.config.examples.map((e) => el("option", { value: e.name, text: `${e.name} (${e.kind})` })));
}

async function main() {
  state.config = await (await fetch("/dashboard/config.json")).json();
  $("#version").textContent = `kubegate ${state.config.version}`;
  buildKinds();
  $("#dev-login").addEventListener("submit", (e) => guarded(() => devLogin(e)));
  $("#logout").addEventListener("click", () => guarded(logout));
  $("#key-form").addEventListener("submit", (e) => guarded(() => createKey(e)));
  $("#copy-key").addEventListener("click", copyKey);
  $("#start-form").addEventListener("submit", (e) => guarded(() => start(e)));
  $("#start-example").addEventListener("change", () => guarded(pickExample));
  await guarded(enter);
}

main();
