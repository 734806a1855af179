// Runs list: phase, progress, duration, experiment, parameters; filterable.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { ErrorBox, Phase, fmtDuration, fmtTime, short, usePoll } from "./util.js";

const PHASES = ["", "Pending", "Running", "Succeeded", "Failed", "Error"];

export function RunsPage() {
  const params = new URLSearchParams(location.search);
  const [phase, setPhase] = useState(params.get("phase") || "");
  const [experiment, setExperiment] = useState(params.get("experiment") || "");
  const [q, setQ] = useState("");
  const query = new URLSearchParams({ limit: "200" });
  if (phase) query.set("phase", phase);
  if (experiment) query.set("experiment", experiment);
  if (q) query.set("q", q);
  const [page, error] = usePoll(`/runs?${query}`, 3000);
  const [exps] = usePoll("/experiments?limit=500");
  const expName = Object.fromEntries(((exps && exps.items) || []).map((e) => [e.id, e.name]));
  return html`
    <h1>Runs</h1>
    <div class="filters">
      <label>Phase <select id="filter-phase" value=${phase} onChange=${(e) => setPhase(e.target.value)}>
        ${PHASES.map((p) => html`<option value=${p}>${p || "any"}</option>`)}
      </select></label>
      <label>Experiment <select id="filter-experiment" value=${experiment}
        onChange=${(e) => setExperiment(e.target.value)}>
        <option value="">any</option>
        ${((exps && exps.items) || []).map((e) => html`<option value=${e.id}>${e.name}</option>`)}
      </select></label>
      <label>Name <input id="filter-name" value=${q} placeholder="contains…"
        onInput=${(e) => setQ(e.target.value)} /></label>
    </div>
    <${ErrorBox} error=${error} />
    <table class="grid" id="runs-table">
      <thead><tr><th>Name</th><th>Phase</th><th>Progress</th><th>Started</th><th>Duration</th>
        <th>Experiment</th><th>Parameters</th></tr></thead>
      <tbody>
        ${((page && page.items) || []).map((r) => html`
          <tr data-run=${r.name}>
            <td><a href=${`/runs/${encodeURIComponent(r.name)}`}>${r.name}</a></td>
            <td><${Phase} phase=${r.phase} /></td>
            <td>${r.progress}</td>
            <td>${fmtTime(r.startedAt || r.createdAt)}</td>
            <td>${fmtDuration(r.duration)}</td>
            <td>${r.experimentId ? html`<a href=${`/experiments/${r.experimentId}`}>${expName[r.experimentId] || "…"}</a>` : "—"}</td>
            <td class="params">${Object.entries(r.parameters || {}).map(([k, v]) =>
              html`<span class="kv">${k}=${short(v, 24)}</span> `)}</td>
          </tr>`)}
      </tbody>
    </table>
    ${page && page.items.length === 0 ? html`<p class="muted">No runs yet. Start one from a <a href="/pipelines">pipeline</a>.</p>` : null}`;
}
