// Nimbus web console: sign-in, the top bar, the error and notice bars, the live event stream
// and the hash router (#/overview, #/instances, #/instances/ID, #/launch).
"use strict";

const ui = {
  topbar: document.getElementById("topbar"),
  main: document.getElementById("main"),
  signin: document.getElementById("signin"),
  signinForm: document.getElementById("signin-form"),
  errorBar: document.getElementById("error-bar"),
  errorText: document.getElementById("error-text"),
  noticeBar: document.getElementById("notice-bar"),
  noticeText: document.getElementById("notice-text"),
  region: document.getElementById("region"),
  user: document.getElementById("user"),
  live: document.getElementById("live"),
};

let events = null;       // the EventSource while signed in
let disposeView = null;  // the current view's cleanup
let signedIn = false;
let noticeTimer = null;

// ---- error and notice bars ----

function showError(message) {
  ui.errorText.textContent = String(message);
  ui.errorBar.hidden = false;
}

function hideError() {
  ui.errorBar.hidden = true;
  ui.errorText.textContent = "";
}

function notify(message) {
  ui.noticeText.textContent = String(message);
  ui.noticeBar.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { ui.noticeBar.hidden = true; }, 6000);
}

// ---- live updates ----

function setLive(state) {
  ui.live.className = `live live-${state}`;
  ui.live.title = { open: "Live updates on", connecting: "Reconnecting to live updates…", off: "Live updates off" }[state];
  ui.live.lastChild.textContent = state === "open" ? "Live" : state === "connecting" ? "Reconnecting" : "Offline";
}

function startEvents() {
  stopEvents();
  const source = new EventSource(api.eventsUrl(), { withCredentials: true });
  events = source;
  setLive("connecting");
  source.addEventListener("open", () => setLive("open"));
  source.addEventListener("instances", (event) => {
    try {
      store.set(JSON.parse(event.data).instances);
    } catch (e) {
      showError(`live updates: a malformed event (${e.message})`);
    }
  });
  source.addEventListener("error", () => {
    if (events !== source) return;
    if (source.readyState !== EventSource.CLOSED) {
      setLive("connecting");
      return;
    }
    // The stream was refused (the session ended?) or the server went away: check, retry.
    setLive("off");
    events = null;
    api.session().then(() => setTimeout(() => { if (signedIn && !events) startEvents(); }, 3000))
                 .catch((e) => { if (e.status === 401) signOutLocally("Your session has ended; sign in again."); });
  });
}

function stopEvents() {
  if (events) events.close();
  events = null;
}

// ---- routing ----

const ctx = {
  showError,
  notify,
  navigate: (hash) => { location.hash = hash; },
  setRegion: (region) => { if (region) ui.region.textContent = region; },
};

function route() {
  if (!signedIn) return;
  if (disposeView) disposeView();
  disposeView = null;
  hideError();
  clear(ui.main);
  const hash = location.hash || "#/overview";
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let page = parts[0] || "overview";
  if (page === "instances" && parts[1]) page = "instance";
  for (const link of ui.topbar.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === (page === "instance" ? "instances" : page));
  }
  const views = { overview: overviewView, instances: instancesView, launch: launchView,
                  instance: (root, c) => instanceView(root, c, parts[1]) };
  const view = views[page];
  if (!view) {
    ui.main.append(el("div", { class: "card empty" }, "No such page. ", el("a", { href: "#/overview" }, "Go to the overview.")));
    return;
  }
  document.title = `${page === "instance" ? parts[1] : page[0].toUpperCase() + page.slice(1)} · Nimbus console`;
  disposeView = view(ui.main, ctx) || null;
}

// ---- session ----

function enterConsole(accessKey) {
  signedIn = true;
  ui.user.textContent = accessKey || "";
  ui.signin.hidden = true;
  ui.topbar.hidden = false;
  ui.main.hidden = false;
  api.instances().then((r) => store.set(r.instances)).catch((e) => showError(`instances: ${e}`));
  api.overview().then((o) => ctx.setRegion(o.region)).catch(() => {});
  startEvents();
  route();
}

function signOutLocally(message) {
  signedIn = false;
  stopEvents();
  if (disposeView) disposeView();
  disposeView = null;
  clear(ui.main);
  store.set([]);
  ui.topbar.hidden = true;
  ui.main.hidden = true;
  ui.signin.hidden = false;
  document.title = "Sign in · Nimbus console";
  if (message) showError(message);
  else hideError();
  ui.signinForm.elements.secret.value = "";
  ui.signinForm.elements.access_key.focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const form = ui.signinForm;
  const button = form.querySelector("button[type=submit]");
  hideError();
  button.disabled = true;
  try {
    const r = await api.signIn(form.elements.access_key.value.trim(), form.elements.secret.value);
    form.elements.secret.value = "";
    enterConsole(r.access_key);
  } catch (e) {
    form.elements.secret.value = "";
    showError(`Sign-in failed: ${e.message || e}`);
  } finally {
    button.disabled = false;
  }
}

async function onSignOut() {
  try {
    await api.signOut();
  } catch (e) {
    // Signed out locally either way.
  }
  signOutLocally(null);
}

function boot() {
  document.getElementById("error-dismiss").addEventListener("click", hideError);
  document.getElementById("notice-dismiss").addEventListener("click", () => { ui.noticeBar.hidden = true; });
  document.getElementById("signout").addEventListener("click", onSignOut);
  ui.signinForm.addEventListener("submit", onSignIn);
  window.addEventListener("hashchange", route);
  api.setUnauthorizedHandler(() => { if (signedIn) signOutLocally("Your session has ended; sign in again."); });
  api.session().then((s) => enterConsole(s.access_key)).catch((e) => {
    signOutLocally(e.status === 401 || e.status === 403 ? null : `The control plane: ${e}`);
  });
}

boot();
