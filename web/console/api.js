// Nimbus web console: the JSON API (/console/api, docs in /tmp contract / docs/console.md).
// Every request carries the session cookie (credentials 'same-origin') and the CSRF header
// X-Nimbus-Console: 1 the control plane requires on every POST and DELETE.
"use strict";

const API = "/console/api";

// An error the API answered ({"error": {"code", "message"}}) or a network failure.
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return this.code ? `${this.code}: ${this.message}` : this.message;
  }
}

// Called when any request answers 401 (the session is gone); app.js sets it.
let onUnauthorized = () => {};

async function apiRequest(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { "X-Nimbus-Console": "1", Accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, "NetworkError", `the control plane did not answer (${e.message})`);
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    const apiError = new ApiError(response.status, String(err.code || `HTTP ${response.status}`),
                                  String(err.message || response.statusText || "request failed"));
    if (response.status === 401 && path !== "/session") onUnauthorized(apiError);
    throw apiError;
  }
  return data;
}

const api = {
  setUnauthorizedHandler(fn) { onUnauthorized = fn; },
  session: () => apiRequest("GET", "/session"),
  signIn: (accessKey, secret) => apiRequest("POST", "/session", { access_key: accessKey, secret }),
  signOut: () => apiRequest("DELETE", "/session"),
  overview: () => apiRequest("GET", "/overview"),
  instances: () => apiRequest("GET", "/instances"),
  instance: (id) => apiRequest("GET", `/instances/${encodeURIComponent(id)}`),
  metrics: (id) => apiRequest("GET", `/instances/${encodeURIComponent(id)}/metrics`),
  choices: () => apiRequest("GET", "/choices"),
  launch: (spec) => apiRequest("POST", "/instances", spec),
  action: (id, verb) => apiRequest("POST", `/instances/${encodeURIComponent(id)}/${verb}`),
  changeType: (id, type) =>
    apiRequest("POST", `/instances/${encodeURIComponent(id)}/type`, { instance_type: type }),
  setTags: (id, tags) => apiRequest("POST", `/instances/${encodeURIComponent(id)}/tags`, { tags }),
  deleteTags: (id, keys) =>
    apiRequest("DELETE", `/instances/${encodeURIComponent(id)}/tags`, { keys }),
  eventsUrl: () => `${API}/events`,
  terminalUrl: (id) => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${API}/instances/${encodeURIComponent(id)}/terminal`;
  },
};
