// Pipelines: upload, versions, the DAG before it runs, and "create run" with a form
// generated from the pipeline's parameters (types, defaults, enums).
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { DagView } from "./graph.js";
import { ErrorBox, fmtTime, navigate, usePoll } from "./util.js";

export function PipelinesPage() {
  const [page, error, reload] = usePoll("/pipelines?limit=500");
  const [upErr, setUpErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const upload = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    if (!form.get("name")) form.delete("name");
    setBusy(true);
    setUpErr(null);
    try {
      const p = await api("/pipelines", { method: "POST", form });
      navigate(`/pipelines/${p.id}`);
    } catch (err) {
      setUpErr(err);
      reload();
    } finally {
      setBusy(false);
    }
  };
  return html`
    <h1>Pipelines</h1>
    <form class="card upload" id="upload-form" onSubmit=${upload}>
      <strong>Upload a pipeline</strong>
      <input type="file" name="file" id="upload-file" accept=".yaml,.yml,.json,.py" required />
      <input name="name" id="upload-name" placeholder="name (optional)" />
      <input name="description" placeholder="description" />
      <button type="submit" disabled=${busy}>${busy ? "Uploading…" : "Upload"}</button>
      <${ErrorBox} error=${upErr} />
    </form>
    <${ErrorBox} error=${error} />
    <table class="grid" id="pipelines-table">
      <thead><tr><th>Name</th><th>Latest version</th><th>Created</th><th>Description</th></tr></thead>
      <tbody>${((page && page.items) || []).map((p) => html`<tr data-pipeline=${p.name}>
        <td><a href=${`/pipelines/${p.id}`}>${p.name}</a></td><td>${p.latestVersion}</td>
        <td>${fmtTime(p.createdAt)}</td><td>${p.description}</td></tr>`)}</tbody>
    </table>`;
}

function StaticDag({ graph }) {
  const ref = useRef(null);
  useEffect(() => {
    const view = new DagView(ref.current);
    view.setGraph(graph.nodes.map((n) => ({ id: n.id, label: n.label + (n.loop ? " ⟳" : "") + (n.when ? " ?" : ""),
      phase: "Pending", type: n.kind === "dag" || n.kind === "steps" ? "Pod" : "Pod" })), graph.edges);
    return () => view.destroy();
  }, [graph]);
  return html`<div class="graph-wrap small"><canvas id="pipeline-dag" ref=${ref}></canvas></div>`;
}

function RunForm({ pipeline, version }) {
  const [exps] = usePoll("/experiments?archived=false&limit=500");
  const [err, setErr] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    const parameters = {};
    for (const p of version.parameters) {
      const v = fd.get(`param-${p.name}`);
      parameters[p.name] = p.type === "boolean" ? (v ? "true" : "false") : String(v ?? "");
    }
    const body = { pipelineId: pipeline.id, pipelineVersion: version.version, parameters };
    if (fd.get("experimentId")) body.experimentId = fd.get("experimentId");
    if (fd.get("runName")) body.name = fd.get("runName");
    try {
      const run = await api("/runs", { method: "POST", json: body });
      navigate(`/runs/${encodeURIComponent(run.metadata.name)}`);
    } catch (x) {
      setErr(x);
    }
  };
  const field = (p) => {
    const id = `param-${p.name}`;
    if (p.enum) {
      return html`<select name=${id} id=${id}>${p.enum.map((o) =>
        html`<option value=${o} selected=${o === p.default}>${o}</option>`)}</select>`;
    }
    if (p.type === "boolean") return html`<input type="checkbox" name=${id} id=${id} checked=${p.default === "true"} />`;
    if (p.type === "integer" || p.type === "number") {
      return html`<input type="number" step=${p.type === "integer" ? "1" : "any"} name=${id} id=${id} value=${p.default ?? ""} />`;
    }
    return html`<input name=${id} id=${id} value=${p.default ?? ""} />`;
  };
  return html`
    <form class="card run-form" id="run-form" onSubmit=${submit}>
      <strong>Create a run</strong>
      ${version.parameters.map((p) => html`<label>${p.name} <small class="muted">${p.type}</small>
        ${field(p)}${p.description ? html`<small class="muted">${p.description}</small>` : null}</label>`)}
      <label>Experiment <select name="experimentId" id="run-experiment"><option value="">none</option>
        ${((exps && exps.items) || []).map((x) => html`<option value=${x.id}>${x.name}</option>`)}</select></label>
      <label>Run name <input name="runName" placeholder="(generated)" /></label>
      <button type="submit" id="start-run">Start run</button>
      <${ErrorBox} error=${err} />
    </form>`;
}

export function PipelinePage({ id }) {
  const [pipeline, error, reload] = usePoll(`/pipelines/${encodeURIComponent(id)}`);
  const [ver, setVer] = useState("latest");
  const [version, verErr] = usePoll(pipeline ? `/pipelines/${pipeline.id}/versions/${ver}` : null);
  const [upErr, setUpErr] = useState(null);
  const newVersion = async (e) => {
    e.preventDefault();
    try {
      const v = await api(`/pipelines/${pipeline.id}/versions`, { method: "POST", form: new FormData(e.target) });
      setVer(String(v.version));
      reload();
    } catch (x) {
      setUpErr(x);
    }
  };
  if (!pipeline) return html`<${ErrorBox} error=${error} />`;
  return html`
    <h1>${pipeline.name}</h1>
    <p class="muted">${pipeline.description}</p>
    <div class="row">
      <label>Version <select id="version-select" value=${ver} onChange=${(e) => setVer(e.target.value)}>
        <option value="latest">latest</option>
        ${pipeline.versions.map((v) => html`<option value=${v.version}>v${v.version} · ${v.sourceKind} · ${fmtTime(v.createdAt)}</option>`)}
      </select></label>
      <form class="inline" onSubmit=${newVersion}>
        <input type="file" name="file" accept=".yaml,.yml,.json,.py" required />
        <button type="submit">Upload new version</button>
      </form>
    </div>
    <${ErrorBox} error=${upErr || verErr} />
    ${version ? html`
      <div class="two-col">
        <${StaticDag} graph=${version.graph} />
        <${RunForm} pipeline=${pipeline} version=${version} />
      </div>
      <details><summary>Source (${version.sourceKind})</summary><pre>${version.source}</pre></details>` : null}`;
}
