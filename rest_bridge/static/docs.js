"use strict";
// Renders /openapi.json without any third-party code: one collapsible section per operation.

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function resolve(doc, schema) {
  if (schema && schema.$ref) return resolve(doc, doc.components.schemas[schema.$ref.split("/").pop()]);
  return schema;
}

function schemaBlock(doc, schema) {
  const seen = new Set();
  const expand = (s) => {
    if (!s || typeof s !== "object") return s;
    if (s.$ref) {
      const name = s.$ref.split("/").pop();
      if (seen.has(name)) return { $ref: name };
      seen.add(name);
      const out = expand(doc.components.schemas[name]);
      seen.delete(name);
      return out;
    }
    if (Array.isArray(s)) return s.map(expand);
    return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, expand(v)]));
  };
  return el("pre", {}, JSON.stringify(expand(schema), null, 2));
}

function parameters(op) {
  if (!op.parameters || op.parameters.length === 0) return el("p", {}, "No parameters.");
  const table = el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "required"), el("th", {}, "schema")));
  for (const p of op.parameters) {
    table.append(el("tr", {}, el("td", {}, p.name), el("td", {}, p.in), el("td", {}, p.required ? "yes" : "no"),
      el("td", {}, JSON.stringify(p.schema))));
  }
  return table;
}

function operation(doc, path, method, op) {
  const body = el("div", { class: "body" },
    el("p", {}, op.description || ""),
    el("p", {}, "Scope: ", el("code", { class: "scope" }, op["x-required-scope"] || "-"),
      "  MCP tool: ", el("code", {}, op["x-mcp-tool"] || "-")),
    el("h3", {}, "Parameters"), parameters(op));
  if (op.requestBody) {
    body.append(el("h3", {}, "Request body"), schemaBlock(doc, op.requestBody.content["application/json"].schema));
  }
  for (const [status, response] of Object.entries(op.responses)) {
    if (!status.startsWith("2")) continue;
    body.append(el("h3", {}, `Response ${status}`), schemaBlock(doc, response.content["application/json"].schema));
  }
  const errors = Object.keys(op.responses).filter((s) => !s.startsWith("2")).join(", ");
  body.append(el("p", {}, `Errors (${errors}) use the shape `, schemaBlock(doc, resolve(doc, { $ref: "#/components/schemas/Error" }))));
  return el("details", { class: "op" },
    el("summary", {}, el("span", { class: `method ${method.toUpperCase()}` }, method.toUpperCase()), ` ${path} — ${op.summary}`),
    body);
}

async function main() {
  const doc = await (await fetch("/openapi.json")).json();
  document.getElementById("title").textContent = `${doc.info.title} ${doc.info.version}`;
  document.getElementById("description").textContent = doc.info.description || "";
  const root = document.getElementById("operations");
  root.replaceChildren();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) root.append(operation(doc, path, method, op));
  }
}

main().catch((err) => {
  document.getElementById("operations").textContent = `Could not load /openapi.json: ${err}`;
});
