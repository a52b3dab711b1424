// Nimbus web console: the pages. Each view is view(root, ctx) -> dispose(); ctx (app.js)
// gives showError, notify, navigate and the live instance store fed by the event stream.
"use strict";

// ---- the live instance list (EventSource in app.js feeds it) ----

const store = {
  instances: [],
  fetchedAt: 0,
  listeners: new Set(),
  set(list) {
    this.instances = Array.isArray(list) ? list : [];
    this.fetchedAt = Date.now();
    for (const fn of this.listeners) fn();
  },
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  },
  find(id) {
    return this.instances.find((i) => i.id === id);
  },
  // The uptime now: the server's value plus what passed since it was sent.
  uptime(inst) {
    if (inst.uptime_s === undefined || inst.uptime_s === null) return null;
    const extra = inst.state === "running" ? (Date.now() - this.fetchedAt) / 1000 : 0;
    return inst.uptime_s + extra;
  },
};

function pageHeader(title, ...actions) {
  return el("div", { class: "page-header" }, el("h1", {}, title),
            el("div", { class: "page-actions" }, actions));
}

function every(ms, fn) {
  const timer = setInterval(fn, ms);
  return () => clearInterval(timer);
}

// ---- modal dialogs ----

// Shows a dialog with BODY and BUTTONS ([{label, value, primary, danger}]); resolves to the
// value of the button pressed, or null when dismissed (Escape).
function modal(title, body, buttons) {
  return new Promise((resolve) => {
    const dialog = el("dialog", { class: "modal" });
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    const footer = el("div", { class: "modal-buttons" }, buttons.map((b) =>
      el("button", { type: "button", class: b.danger ? "danger" : b.primary ? "primary" : "",
                     onclick: () => done(b.value) }, b.label)));
    dialog.append(el("h2", {}, title), el("div", { class: "modal-body" }, body), footer);
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(null); });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

async function confirmAction(verb, ids) {
  const what = ids.length === 1 ? ids[0] : `${ids.length} instances`;
  const text = verb === "terminate"
    ? `Terminate ${what}? Its disk is deleted; this cannot be undone.`
    : `${verb[0].toUpperCase()}${verb.slice(1)} ${what}?`;
  const answer = await modal(`${verb[0].toUpperCase()}${verb.slice(1)} instance`, el("p", {}, text), [
    { label: "Cancel", value: false },
    { label: verb[0].toUpperCase() + verb.slice(1), value: true, danger: verb === "terminate", primary: true },
  ]);
  return answer === true;
}

// Runs VERB on each of IDS; errors shown, the live stream shows the new states.
async function runAction(ctx, verb, ids) {
  if (!(await confirmAction(verb, ids))) return;
  for (const id of ids) {
    try {
      await api.action(id, verb);
    } catch (e) {
      ctx.showError(`${verb} ${id}: ${e}`);
      return;
    }
  }
  ctx.notify(`${verb[0].toUpperCase()}${verb.slice(1)}: ${ids.join(", ")}`);
}

async function changeTypeDialog(ctx, inst) {
  let choices;
  try {
    choices = await api.choices();
  } catch (e) {
    ctx.showError(`instance types: ${e}`);
    return;
  }
  const select = el("select", { name: "instance_type" }, (choices.instance_types || []).map((t) =>
    el("option", { value: t.name, selected: t.name === inst.type },
       `${t.name} (${t.vcpus} vCPU, ${mib(t.memory_mib)})`)));
  const body = [el("p", {}, `The type of ${inst.id} can change while it is stopped.`),
                el("label", { class: "field" }, el("span", {}, "Instance type"), select)];
  const ok = await modal("Change instance type", body,
                         [{ label: "Cancel", value: false }, { label: "Change", value: true, primary: true }]);
  if (!ok) return;
  try {
    await api.changeType(inst.id, select.value);
    ctx.notify(`${inst.id} is now ${select.value}`);
  } catch (e) {
    ctx.showError(`change type of ${inst.id}: ${e}`);
  }
}

async function tagsDialog(ctx, inst) {
  const original = Object.assign({}, inst.tags || {});
  const rows = el("tbody");
  const addRow = (key, value) => {
    const row = el("tr", {},
      el("td", {}, el("input", { type: "text", class: "tag-key", value: key, placeholder: "Key" })),
      el("td", {}, el("input", { type: "text", class: "tag-value", value: value, placeholder: "Value" })),
      el("td", {}, el("button", { type: "button", class: "small", onclick: () => row.remove() }, "Remove")));
    rows.appendChild(row);
  };
  for (const [k, v] of Object.entries(original)) addRow(k, v);
  if (!Object.keys(original).length) addRow("", "");
  const body = [el("table", { class: "tags-table" },
                   el("thead", {}, el("tr", {}, el("th", {}, "Key"), el("th", {}, "Value"), el("th"))), rows),
                el("button", { type: "button", class: "small", onclick: () => addRow("", "") }, "Add tag")];
  const ok = await modal(`Tags of ${inst.id}`, body,
                         [{ label: "Cancel", value: false }, { label: "Save", value: true, primary: true }]);
  if (!ok) return;
  const tags = {};
  for (const row of rows.querySelectorAll("tr")) {
    const key = row.querySelector(".tag-key").value;
    if (key !== "") tags[key] = row.querySelector(".tag-value").value;
  }
  const removed = Object.keys(original).filter((k) => !(k in tags));
  const changed = {};
  for (const [k, v] of Object.entries(tags)) if (original[k] !== v) changed[k] = v;
  try {
    if (removed.length) await api.deleteTags(inst.id, removed);
    if (Object.keys(changed).length) await api.setTags(inst.id, changed);
    ctx.notify(`Tags of ${inst.id} saved`);
  } catch (e) {
    ctx.showError(`tags of ${inst.id}: ${e}`);
  }
}

// ---- overview ----

function resourceBar(label, r, unitFormat) {
  r = r || {};
  const cap = Number(r.capacity) || 0;
  const pct = (v) => (cap > 0 && isFinite(v) ? Math.max(0, Math.min(100, (100 * v) / cap)) : 0);
  const hasUsed = r.used !== undefined && r.used !== null;
  return el("div", { class: "resource" },
    el("div", { class: "resource-label" }, el("span", {}, label),
       el("span", { class: "resource-numbers" },
          `${hasUsed ? unitFormat(r.used) : "–"} used · ${unitFormat(r.allocated)} allocated · ${unitFormat(cap)}`)),
    el("div", { class: "bar", title: `${label}: capacity ${unitFormat(cap)}` },
       el("div", { class: "bar-allocated", style: `width: ${pct(r.allocated)}%` }),
       hasUsed ? el("div", { class: "bar-used", style: `width: ${pct(r.used)}%` }) : null));
}

function instanceLink(id) {
  const inst = store.find(id);
  return el("li", {}, el("a", { href: `#/instances/${encodeURIComponent(id)}` }, id),
            inst && inst.name ? el("span", { class: "muted" }, ` ${inst.name}`) : null,
            inst ? badge(inst.state) : null);
}

function hostCard(host) {
  const ids = host.instances || [];
  return el("section", { class: "card host-card", dataset: { host: host.id } },
    el("div", { class: "card-title" }, el("h3", {}, host.id), el("span", { class: "muted" }, host.zone), badge(host.state)),
    resourceBar("CPU", host.cpus, (v) => `${num(v)} vCPU`),
    resourceBar("Memory", host.memory_mib, mib),
    resourceBar("Disk", host.disk_mib, mib),
    el("div", { class: "host-instances" },
       el("h4", {}, `Instances (${ids.length})`),
       ids.length ? el("ul", { class: "instance-list" }, ids.map(instanceLink))
                  : el("p", { class: "muted" }, "No instances on this host.")));
}

// A region of the cloud: this one, or a link to the other's own console.
function regionCard(r) {
  const endpoint = String(r.endpoint || "");
  const link = /^https?:\/\/[^\s"<>]+$/.test(endpoint) ? `${endpoint}/console/` : null;
  return el("section", { class: "card zone-card", dataset: { region: r.name } },
    el("h3", {}, r.name),
    r.current ? el("span", { class: "muted" }, "this region")
              : link ? el("a", { href: link }, "open its console") : el("span", { class: "muted" }, endpoint));
}

function overviewView(root, ctx) {
  const zones = el("div", { class: "zone-grid" });
  const hosts = el("div", { class: "host-grid" });
  const legend = el("div", { class: "legend" },
    el("span", { class: "swatch swatch-used" }), "used (the host's report)",
    el("span", { class: "swatch swatch-allocated" }), "allocated to instances",
    el("span", { class: "swatch swatch-free" }), "capacity");
  const regions = el("div", { class: "zone-grid" });
  root.append(pageHeader("Overview", el("a", { class: "button primary", href: "#/launch" }, "Launch instances")),
              el("h2", {}, "Regions"), regions, el("h2", {}, "Zones"), zones, el("h2", {}, "Hosts"), legend, hosts);
  let last = null;
  let shown = null;  // what is on the page: redrawn only when the data changed
  const render = () => {
    if (!last) return;
    const key = JSON.stringify([last, store.instances.map((i) => [i.id, i.name, i.state])]);
    if (key === shown) return;
    shown = key;
    ctx.setRegion(last.region);
    clear(regions).append(...(last.regions || []).map(regionCard));
    clear(zones).append(...(last.zones || []).map((z) => el("section", { class: "card zone-card" },
      el("h3", {}, z.name),
      el("div", { class: "stats" },
         el("div", {}, el("strong", {}, String(z.hosts)), el("span", {}, "hosts")),
         el("div", {}, el("strong", {}, String(z.instances)), el("span", {}, "instances"))))));
    clear(hosts);
    if (!(last.hosts || []).length) hosts.append(el("p", { class: "muted" }, "No hosts have joined this cloud yet."));
    else hosts.append(...last.hosts.map(hostCard));
  };
  const load = async () => {
    try {
      last = await api.overview();
      render();
    } catch (e) {
      ctx.showError(`overview: ${e}`);
    }
  };
  load();
  const stopTimer = every(5000, load);
  const unsubscribe = store.subscribe(load);
  return () => { stopTimer(); unsubscribe(); };
}

// ---- instances ----

const ACTIONS = [
  { verb: "stop", label: "Stop", allowed: (s) => s === "running" || s === "pending" },
  { verb: "start", label: "Start", allowed: (s) => s === "stopped" },
  { verb: "reboot", label: "Reboot", allowed: (s) => s === "running" },
  { verb: "terminate", label: "Terminate", allowed: (s) => s !== "terminated" && s !== "shutting-down", danger: true },
];

function matches(inst, query) {
  if (!query) return true;
  const hay = [inst.id, inst.name, inst.state, inst.type, inst.zone, inst.host, inst.private_ip,
               inst.public_ip, inst.image_id, inst.key_name,
               ...Object.entries(inst.tags || {}).flat()].join(" ").toLowerCase();
  return query.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

function instancesView(root, ctx) {
  const selected = new Set();
  const filter = el("input", { type: "search", class: "filter", placeholder: "Filter by id, name, state, type, zone, address, tag…",
                               "aria-label": "Filter instances" });
  const buttons = {};
  for (const a of ACTIONS) {
    buttons[a.verb] = el("button", { type: "button", class: a.danger ? "danger" : "", dataset: { action: a.verb },
      onclick: () => runAction(ctx, a.verb, [...selected].filter((id) => a.allowed((store.find(id) || {}).state))) }, a.label);
  }
  buttons.type = el("button", { type: "button", dataset: { action: "type" },
                                onclick: () => changeTypeDialog(ctx, store.find([...selected][0])) }, "Change type");
  buttons.tags = el("button", { type: "button", dataset: { action: "tags" },
                                onclick: () => tagsDialog(ctx, store.find([...selected][0])) }, "Tags");
  const count = el("span", { class: "muted count" });
  const tbody = el("tbody");
  const selectAll = el("input", { type: "checkbox", "aria-label": "Select all" });
  const uptimeCells = new Map();
  const table = el("table", { class: "data-table instances-table" },
    el("thead", {}, el("tr", {}, el("th", { class: "check" }, selectAll),
      ["Name", "Instance", "State", "Type", "Zone", "Host", "Private IP", "Public IP", "Uptime"].map((h) => el("th", {}, h)))),
    tbody);
  root.append(pageHeader("Instances", el("a", { class: "button primary", href: "#/launch" }, "Launch instances")),
              el("div", { class: "toolbar" }, filter, el("div", { class: "toolbar-actions" }, Object.values(buttons))),
              el("div", { class: "table-wrap" }, table), count);

  const visible = () => store.instances.filter((i) => matches(i, filter.value.trim()));
  const updateButtons = () => {
    const states = [...selected].map((id) => (store.find(id) || {}).state);
    for (const a of ACTIONS) buttons[a.verb].disabled = !states.some(a.allowed);
    buttons.type.disabled = !(states.length === 1 && states[0] === "stopped");
    buttons.tags.disabled = !(states.length === 1 && states[0] !== "terminated");
  };
  const row = (inst) => {
    const box = el("input", { type: "checkbox", checked: selected.has(inst.id), "aria-label": `Select ${inst.id}`,
      onchange: () => { box.checked ? selected.add(inst.id) : selected.delete(inst.id); updateButtons(); } });
    const uptime = el("td", { class: "num" }, duration(store.uptime(inst)));
    uptimeCells.set(inst.id, uptime);
    return el("tr", { dataset: { id: inst.id, state: inst.state }, class: selected.has(inst.id) ? "selected" : "" },
      el("td", { class: "check" }, box),
      el("td", {}, inst.name || el("span", { class: "muted" }, "–")),
      el("td", { class: "mono" }, el("a", { href: `#/instances/${encodeURIComponent(inst.id)}` }, inst.id)),
      el("td", { class: "state" }, badge(inst.state)),
      el("td", {}, inst.type || "–"), el("td", {}, inst.zone || "–"), el("td", {}, inst.host || "–"),
      el("td", { class: "mono" }, inst.private_ip || "–"), el("td", { class: "mono" }, inst.public_ip || "–"),
      uptime);
  };
  const render = () => {
    const known = new Set(store.instances.map((i) => i.id));
    for (const id of [...selected]) if (!known.has(id)) selected.delete(id);
    const list = visible();
    uptimeCells.clear();
    clear(tbody);
    if (!list.length) {
      tbody.append(el("tr", {}, el("td", { colspan: 10, class: "empty" },
        store.instances.length ? "No instance matches the filter." : "No instances yet. Launch one to begin.")));
    } else {
      tbody.append(...list.map(row));
    }
    selectAll.checked = list.length > 0 && list.every((i) => selected.has(i.id));
    count.textContent = `${list.length} of ${store.instances.length} instances`;
    updateButtons();
  };
  selectAll.addEventListener("change", () => {
    for (const i of visible()) selectAll.checked ? selected.add(i.id) : selected.delete(i.id);
    render();
  });
  filter.addEventListener("input", render);
  render();
  const unsubscribe = store.subscribe(render);
  const stopTimer = every(1000, () => {
    for (const inst of store.instances) {
      const cell = uptimeCells.get(inst.id);
      if (cell) cell.textContent = duration(store.uptime(inst));
    }
  });
  filter.focus();
  return () => { unsubscribe(); stopTimer(); };
}

// ---- launch ----

function field(label, input, hint) {
  return el("label", { class: "field" }, el("span", {}, label), input, hint ? el("small", { class: "muted" }, hint) : null);
}

function launchView(root, ctx) {
  const form = el("form", { class: "card launch-form", novalidate: true });
  root.append(pageHeader("Launch instances"), form);
  form.append(el("p", { class: "muted" }, "Loading the choices…"));
  let alive = true;
  api.choices().then((c) => { if (alive) buildLaunchForm(form, c, ctx); })
               .catch((e) => ctx.showError(`launch choices: ${e}`));
  return () => { alive = false; };
}

function buildLaunchForm(form, c, ctx) {
  const image = el("select", { name: "image_id", required: true },
    (c.images || []).map((i) => el("option", { value: i.id }, i.name ? `${i.name} (${i.id})` : i.id)));
  const type = el("select", { name: "instance_type", required: true },
    (c.instance_types || []).map((t) => el("option", { value: t.name }, `${t.name} — ${t.vcpus} vCPU, ${mib(t.memory_mib)}`)));
  const key = el("select", { name: "key_name" }, el("option", { value: "" }, "No key pair"),
    (c.key_pairs || []).map((k) => el("option", { value: k }, k)));
  const groups = el("div", { class: "checks" }, (c.security_groups || []).map((g) =>
    el("label", {}, el("input", { type: "checkbox", name: "security_group_ids", value: g.id }),
       ` ${g.name || g.id} `, el("span", { class: "muted mono" }, g.id))));
  if (!(c.security_groups || []).length) groups.append(el("span", { class: "muted" }, "The default group."));
  const zone = el("select", { name: "zone" }, el("option", { value: "" }, "Any zone (the scheduler picks)"),
    (c.zones || []).map((z) => el("option", { value: z }, z)));
  const name = el("input", { type: "text", name: "name", placeholder: "web-1", autocomplete: "off" });
  const count = el("input", { type: "number", name: "count", min: 1, max: 20, value: 1 });
  const userData = el("textarea", { name: "user_data", rows: 6, spellcheck: "false",
                                    placeholder: "#!/bin/sh\necho hello from user data" });
  const submit = el("button", { type: "submit", class: "primary" }, "Launch");
  clear(form).append(
    el("div", { class: "form-grid" },
       field("Name", name, "Stored as the Name tag."),
       field("Image", image),
       field("Instance type", type),
       field("Key pair", key),
       field("Zone", zone),
       field("Count", count, "1 to 20 instances.")),
    el("fieldset", {}, el("legend", {}, "Security groups"), groups),
    field("User data", userData, "Text the instance reads from its metadata service at boot."),
    el("div", { class: "form-actions" }, el("a", { class: "button", href: "#/instances" }, "Cancel"), submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const spec = { image_id: image.value, instance_type: type.value };
    if (key.value) spec.key_name = key.value;
    const sgs = [...groups.querySelectorAll("input:checked")].map((b) => b.value);
    if (sgs.length) spec.security_group_ids = sgs;
    if (userData.value) spec.user_data = userData.value;
    if (zone.value) spec.zone = zone.value;
    if (name.value) spec.name = name.value;
    const n = Number(count.value);
    if (!Number.isInteger(n) || n < 1 || n > 20) {
      ctx.showError("Count must be a whole number from 1 to 20.");
      return;
    }
    spec.count = n;
    submit.disabled = true;
    submit.textContent = "Launching…";
    try {
      const r = await api.launch(spec);
      ctx.notify(`Launched ${(r.instances || []).join(", ")}`);
      ctx.navigate("#/instances");
    } catch (err) {
      ctx.showError(`launch: ${err}`);
      submit.disabled = false;
      submit.textContent = "Launch";
    }
  });
}

// ---- one instance ----

// A line chart of SAMPLES ([{t, v}]) as inline SVG; no data is ever markup.
function chart(title, samples, formatValue, cssClass) {
  const W = 520, H = 180, L = 56, R = 12, T = 12, B = 26;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: `chart ${cssClass}`, role: "img", "aria-label": title });
  const pts = samples.filter((p) => isFinite(p.t) && isFinite(p.v));
  // The value axis in nice steps (1, 2 or 5 x 10^k), at most about 5 lines, every label distinct.
  const top = Math.max(1, ...pts.map((p) => p.v));
  const step = niceStep(top / 4);
  const maxV = Math.ceil(top / step - 1e-9) * step;
  const now = Date.now() / 1000;
  const t0 = pts.length ? Math.min(pts[0].t, now - 300) : now - 300;
  const t1 = pts.length ? Math.max(pts[pts.length - 1].t, t0 + 60) : now;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / maxV) * (H - T - B);
  for (let i = 0; i * step <= maxV + 1e-9; i++) {
    const v = i * step;
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }),
               svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, formatValue(v, step)));
  }
  // The time axis: whole minutes before the newest time, in a step giving at most 5 labels.
  const spanMin = (t1 - t0) / 60;
  const minuteStep = [1, 2, 5, 10, 15, 20, 30, 60].find((m) => spanMin / m <= 5) || 60;
  for (let ago = 0; ago * 60 <= t1 - t0 + 1e-6; ago += minuteStep) {
    const t = t1 - ago * 60;
    const px = x(t);
    svg.append(svgEl("text", { x: px, y: H - 8, "text-anchor": ago === 0 ? "end" : px - L < 20 ? "start" : "middle",
                               class: "tick" }, ago === 0 ? "now" : `-${ago} min`));
  }
  if (pts.length > 1) {
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    svg.append(svgEl("path", { d: `${d} L${x(pts[pts.length - 1].t).toFixed(1)},${y(0)} L${x(pts[0].t).toFixed(1)},${y(0)} Z`,
                               class: "area" }),
               svgEl("path", { d, class: "line" }));
  } else {
    svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "tick" },
                     pts.length ? "collecting samples…" : "no samples yet"));
  }
  const lastValue = pts.length ? formatValue(pts[pts.length - 1].v) : "–";
  return el("figure", { class: "chart-box" },
            el("figcaption", {}, el("span", {}, title), el("strong", {}, lastValue)), svg);
}

// The smallest of 1, 2, 5 x 10^k at least V.
function niceStep(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v - 1e-12) return m * p;
  return 10 * p;
}

function detailsList(inst) {
  const tags = Object.entries(inst.tags || {});
  const rows = [
    ["Instance", inst.id], ["Name", inst.name || "–"], ["Type", inst.type], ["Image", inst.image_id],
    ["Zone", inst.zone], ["Host", inst.host || "–"], ["Private IP", inst.private_ip || "–"],
    ["Public IP", inst.public_ip || "–"], ["Key pair", inst.key_name || "–"],
    ["Security groups", (inst.security_groups || []).map((g) => (g && typeof g === "object" ? g.name || g.id : g)).join(", ") || "–"],
    ["Launched", timestamp(inst.launch_time)], ["Uptime", duration(store.uptime(inst) ?? inst.uptime_s)],
  ];
  return el("div", {},
    el("dl", { class: "details" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v === undefined ? "–" : v)])),
    el("h4", {}, "Tags"),
    tags.length ? el("ul", { class: "tag-chips" }, tags.map(([k, v]) => el("li", {}, el("strong", {}, k), v ? ` = ${v}` : "")))
                : el("p", { class: "muted" }, "No tags."));
}

function instanceView(root, ctx, id) {
  const title = el("h1", {}, id);
  const stateBox = el("span");
  const actions = el("div", { class: "page-actions" });
  const details = el("section", { class: "card" }, el("p", { class: "muted" }, "Loading…"));
  const charts = el("div", { class: "charts" });
  const consoleOut = el("pre", { class: "console-output" });
  const termHost = el("div", { class: "terminal-host" });
  const termStatus = el("span", { class: "term-status muted" }, "not connected");
  const reconnect = el("button", { type: "button", dataset: { term: "connect" } }, "Connect");
  const detach = el("button", { type: "button", dataset: { term: "detach" }, disabled: true }, "Detach");
  root.append(
    el("div", { class: "page-header" }, el("div", { class: "title-row" }, el("a", { href: "#/instances", class: "back" }, "← Instances"),
       title, stateBox), actions),
    el("div", { class: "detail-grid" },
       el("div", {}, el("h2", {}, "Details"), details),
       el("div", {}, el("h2", {}, "Serial terminal"),
          el("section", { class: "card terminal-card" },
             el("div", { class: "terminal-bar" }, termStatus, el("div", { class: "page-actions" }, reconnect, detach)),
             termHost))),
    el("h2", {}, "Utilisation"),
    el("section", { class: "card" }, charts),
    el("h2", {}, "Console output"),
    el("section", { class: "card" }, consoleOut));

  const terminal = new ConsoleTerminal(termHost, api.terminalUrl(id), {
    onStatus: (text, connected) => {
      termStatus.textContent = text;
      termStatus.className = `term-status ${connected ? "connected" : "muted"}`;
      detach.disabled = !connected;
      reconnect.textContent = connected ? "Reconnect" : "Connect";
    },
  });
  reconnect.addEventListener("click", () => terminal.connect());
  detach.addEventListener("click", () => terminal.detach());

  let current = null;
  let autoConnected = false;
  // The buttons are made once and only enabled or disabled as the state changes: a button
  // rebuilt under the pointer would lose the click.
  const actionButtons = ACTIONS.map((a) => ({ allowed: a.allowed, button:
    el("button", { type: "button", class: a.danger ? "danger" : "", dataset: { action: a.verb }, disabled: true,
                   onclick: () => { if (current) runAction(ctx, a.verb, [current.id]); } }, a.label) }));
  actionButtons.push(
    { allowed: (s) => s === "stopped", button: el("button", { type: "button", dataset: { action: "type" }, disabled: true,
        onclick: () => { if (current) changeTypeDialog(ctx, current); } }, "Change type") },
    { allowed: (s) => s !== "terminated", button: el("button", { type: "button", dataset: { action: "tags" }, disabled: true,
        onclick: () => { if (current) tagsDialog(ctx, current); } }, "Tags") });
  actions.append(...actionButtons.map((b) => b.button));
  const renderInstance = (inst) => {
    current = inst;
    title.textContent = inst.name ? `${inst.name} (${inst.id})` : inst.id;
    if (stateBox.textContent !== String(inst.state)) clear(stateBox).append(badge(inst.state));
    clear(details).append(detailsList(inst));
    for (const b of actionButtons) b.button.disabled = !b.allowed(inst.state);
    if (inst.console_output !== undefined) {
      const atBottom = consoleOut.scrollTop + consoleOut.clientHeight >= consoleOut.scrollHeight - 4;
      consoleOut.textContent = inst.console_output || "(no console output yet)";
      if (atBottom) consoleOut.scrollTop = consoleOut.scrollHeight;
    }
    if (inst.state === "running" && !autoConnected) {
      autoConnected = true;
      terminal.connect();
    }
  };
  const load = async () => {
    try {
      renderInstance(await api.instance(id));
    } catch (e) {
      ctx.showError(`instance ${id}: ${e}`);
    }
  };
  const loadMetrics = async () => {
    try {
      const m = await api.metrics(id);
      const samples = m.samples || [];
      clear(charts).append(
        chart("CPU", samples.map((s) => ({ t: s.t, v: s.cpu_pct })), (v, step) => `${num(v, (step !== undefined ? step < 1 : v < 10) ? 1 : 0)}%`, "chart-cpu"),
        chart("Memory", samples.map((s) => ({ t: s.t, v: s.memory_mib })), mib, "chart-memory"));
    } catch (e) {
      if (!charts.firstChild) charts.append(el("p", { class: "muted" }, `No metrics: ${e}`));
    }
  };
  load();
  loadMetrics();
  const stopTimers = [every(5000, load), every(5000, loadMetrics)];
  let lastState = null;
  const unsubscribe = store.subscribe(() => {
    const inst = store.find(id);
    if (inst && inst.state !== lastState) {
      lastState = inst.state;
      load();
    }
  });
  return () => { stopTimers.forEach((s) => s()); unsubscribe(); terminal.dispose(); };
}
