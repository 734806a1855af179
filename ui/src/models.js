// Models page: the model registry (names, versions, stages, metrics, lineage).
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { api } from "./api.js";
import { ErrorBox, fmtTime, usePoll } from "./util.js";

const STAGES = ["none", "staging", "production", "archived"];

function Versions({ name }) {
  const [page, error, reload] = usePoll(`/models/${encodeURIComponent(name)}/versions`);
  const [err, setErr] = useState(null);
  const promote = (v, stage) =>
    api(`/models/${encodeURIComponent(name)}/versions/${v}/stage`, { method: "PUT", json: { stage } })
      .then(reload).catch(setErr);
  return html`<${ErrorBox} error=${err || error} />
    <table class="grid"><thead><tr><th>Version</th><th>Stage</th><th>Metrics</th><th>Run</th><th>Created</th></tr></thead>
    <tbody>${((page && page.items) || []).map((v) => html`<tr>
      <td>${v.version}</td>
      <td><select value=${v.stage} onChange=${(e) => promote(v.version, e.target.value)}>
        ${STAGES.map((s) => html`<option value=${s}>${s}</option>`)}</select></td>
      <td>${Object.entries(v.metrics || {}).map(([k, x]) => html`<span class="kv">${k}=${typeof x === "number" ? x.toPrecision(4) : x}</span> `)}</td>
      <td>${v.workflow_name ? html`<a href=${`/runs/${v.workflow_name}`}>${v.workflow_name}</a>` : "—"}</td>
      <td>${fmtTime(v.created_at)}</td></tr>`)}</tbody></table>`;
}

export function ModelsPage() {
  const [page, error] = usePoll("/models");
  const [open, setOpen] = useState(null);
  if (error && error.status === 404) return html`<h1>Models</h1><p class="muted">No model registry in this server.</p>`;
  return html`
    <h1>Models</h1>
    <${ErrorBox} error=${error} />
    <table class="grid" id="models-table"><thead><tr><th>Name</th><th>Versions</th><th>Production</th><th>Staging</th></tr></thead>
      <tbody>${((page && page.items) || []).map((m) => html`<tr>
        <td><button class="link" onClick=${() => setOpen(open === m.name ? null : m.name)}>${m.name}</button></td>
        <td>${m.versions}</td><td>${m.production_version ?? "—"}</td>
        <td>${(m.staging_versions || []).join(", ") || "—"}</td></tr>`)}</tbody></table>
    ${open ? html`<h2>${open}</h2><${Versions} name=${open} />` : null}`;
}
