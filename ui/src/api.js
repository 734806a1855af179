// The REST client of the UI. The session cookie authenticates; the CSRF header is required
// by the server on state-changing requests made with a cookie.
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

export async function api(path, { method = "GET", json, form, signal } = {}) {
  const headers = { "X-Chute-CSRF": "1", Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const resp = await fetch(BASE + path, { method, headers, body, signal, credentials: "same-origin" });
  if (resp.status === 401) {
    toLogin();
    throw new ApiError(401, null);
  }
  if (resp.status === 204) return null;
  const ctype = resp.headers.get("content-type") || "";
  const data = ctype.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// Follow a streamed text response (logs), calling onText for each chunk until aborted.
export async function streamText(path, onText, signal) {
  const resp = await fetch(BASE + path, { headers: { "X-Chute-CSRF": "1" }, signal, credentials: "same-origin" });
  if (resp.status === 401) return toLogin();
  if (!resp.ok) {
    onText(`[${resp.status}] ${await resp.text()}\n`);
    return;
  }
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    onText(dec.decode(value, { stream: true }));
  }
}

export function artifactUrl(run, nodeId, name, action = "download", file) {
  const q = file ? `?file=${encodeURIComponent(file)}` : "";
  return `${BASE}/runs/${encodeURIComponent(run)}/artifacts/${encodeURIComponent(nodeId)}/${encodeURIComponent(name)}/${action}${q}`;
}
