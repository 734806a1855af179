// Small shared helpers: formatting, polling, phase badges.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.js";
import { PHASE_COLORS } from "./graph.js";

export function navigate(path) {
  history.pushState(null, "", path);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function fmtTime(t) {
  return t ? new Date(t * 1000).toLocaleString() : "—";
}

export function fmtDuration(s) {
  if (s == null) return "—";
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function toEpoch(v) {
  if (v == null || v === "") return null;
  if (typeof v === "number") return v;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t / 1000;
}

export function Phase({ phase }) {
  const bg = PHASE_COLORS[phase] || "#c4c9d0";
  const dark = ["Running", "Succeeded", "Failed", "Error"].includes(phase);
  return html`<span class="phase" data-phase=${phase}
    style=${`background:${bg};color:${dark ? "#fff" : "#222"}`}>${phase}</span>`;
}

// Fetch `path` now and every `ms` milliseconds; returns [data, error, reload].
export function usePoll(path, ms = 0) {
  const [state, setState] = useState({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return undefined;
    let alive = true;
    const ctl = new AbortController();
    const load = () =>
      api(path, { signal: ctl.signal })
        .then((data) => alive && setState({ data, error: null }))
        .catch((error) => alive && error.name !== "AbortError" && setState((s) => ({ ...s, error })));
    load();
    const timer = ms ? setInterval(load, ms) : null;
    return () => {
      alive = false;
      ctl.abort();
      if (timer) clearInterval(timer);
    };
  }, [path, ms, tick]);
  return [state.data, state.error, () => setTick((t) => t + 1)];
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.message || String(error)}</div>`;
}

export function short(v, n = 40) {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s && s.length > n ? s.slice(0, n - 1) + "…" : s;
}
