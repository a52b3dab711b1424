// Nimbus web console: DOM building and formatting helpers. Everything shown is built with
// createElement and textContent: no data ever goes through innerHTML.
"use strict";

// el("div", {class: "x", onclick: fn, dataset: {id: 1}}, "text", otherNode, [more, nodes])
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  appendChildren(node, children);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  appendChildren(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function appendChildren(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function mib(n) {
  if (n === undefined || n === null || !isFinite(n)) return "–";
  if (Math.abs(n) >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} TiB`;
  if (Math.abs(n) >= 1024) return `${(n / 1024).toFixed(1)} GiB`;
  return `${Math.round(n)} MiB`;
}

function num(n, digits = 1) {
  if (n === undefined || n === null || !isFinite(n)) return "–";
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

function duration(seconds) {
  if (seconds === undefined || seconds === null || !isFinite(seconds) || seconds < 0) return "–";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

function timestamp(value) {
  if (!value) return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// The coloured state badge of an instance or a host.
function badge(stateName) {
  const s = String(stateName || "unknown");
  const known = ["pending", "running", "stopping", "stopped", "shutting-down", "terminated",
                 "up", "down", "draining"];
  return el("span", { class: `badge badge-${known.includes(s) ? s : "unknown"}` }, s);
}
