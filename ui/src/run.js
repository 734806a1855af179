// Run page: the live DAG (canvas), run actions, and the node panel (inputs, outputs,
// artifacts with previews, live logs, timing, retries).
import { html } from "htm/preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, artifactUrl, streamText } from "./api.js";
import { DagView, runGraph } from "./graph.js";
import { ErrorBox, Phase, fmtDuration, fmtTime, short, toEpoch } from "./util.js";

let actionsPromise = null;  // the verbs the server supports, fetched once
function supportedActions() {
  actionsPromise = actionsPromise || api("/run-actions").catch(() => ({ actions: [] }));
  return actionsPromise;
}

// Which actions make sense in the run's current state (the server still checks).
function actionFits(verb, st) {
  const active = st.phase === "Pending" || st.phase === "Running";
  const suspended = !!(st.nodes && Object.values(st.nodes).some((n) => n.type === "Suspend" && n.phase === "Running"));
  if (verb === "suspend" || verb === "stop" || verb === "terminate") return active;
  if (verb === "resume") return active || suspended;
  if (verb === "retry") return st.phase === "Failed" || st.phase === "Error";
  return true;
}

export function RunPage({ name }) {
  const [run, setRun] = useState(null);
  const [error, setError] = useState(null);
  const [selected, setSelected] = useState(null);
  const [filter, setFilter] = useState("");
  const [actions, setActions] = useState([]);
  const canvasRef = useRef(null);
  const viewRef = useRef(null);
  const runRef = useRef(null);
  const esRef = useRef(null);
  const openEventsRef = useRef(null);

  const load = () =>
    api(`/runs/${encodeURIComponent(name)}`).then((r) => {
      runRef.current = r;
      setRun(r);
      const { nodes, edges } = runGraph(r.status);
      if (viewRef.current) viewRef.current.setGraph(nodes, edges);
      return r;
    });

  useEffect(() => {
    const view = new DagView(canvasRef.current, {
      onSelect: (id) => setSelected(id),
      onFirstPaint: () => {
        performance.mark("chute:run-rendered");
        window.__chuteRunRendered = { ms: performance.now(), nodes: view.nodes.size, layoutMs: view.layoutMs };
        canvasRef.current.dataset.rendered = "1";
      },
    });
    viewRef.current = view;
    load().catch(setError);
    supportedActions().then((a) => setActions(a.actions || []));
    // Live status: phase changes recolour; unknown nodes (a loop expanding) trigger one
    // debounced reload of the run, which relayouts.
    let reloadTimer = null;
    const reload = () => {
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(() => load().catch(() => {}), 250);
    };
    const openEvents = () => {
      if (esRef.current) esRef.current.close();
      const es = new EventSource(`/api/v1/runs/${encodeURIComponent(name)}/events`);
      esRef.current = es;
      es.addEventListener("nodes", (e) => {
        const batch = JSON.parse(e.data);
        const cur = runRef.current;
        const known = cur && cur.status && cur.status.nodes;
        if (!known || batch.some((n) => !known[n.id])) {
          reload();
          return;
        }
        for (const n of batch) known[n.id].phase = n.phase;
        view.update(batch.map((n) => ({ id: n.id, phase: n.phase })));
        setRun({ ...cur });
      });
      es.addEventListener("workflow", () => reload());
      es.addEventListener("end", () => {
        es.close();
        reload();
      });
    };
    openEventsRef.current = openEvents;
    openEvents();
    return () => {
      if (esRef.current) esRef.current.close();
      clearTimeout(reloadTimer);
      view.destroy();
    };
  }, [name]);

  const act = async (verb) => {
    try {
      setError(null);
      if (verb === "delete") {
        if (!confirm(`Delete run ${name}?`)) return;
        await api(`/runs/${encodeURIComponent(name)}`, { method: "DELETE" });
        history.back();
        return;
      }
      const r = await api(`/runs/${encodeURIComponent(name)}/${verb}`, { method: "PUT", json: {} });
      if (verb === "resubmit" && r && r.metadata) location.assign(`/runs/${r.metadata.name}`);
      else {
        load();
        openEventsRef.current(); // the stream ended with the run; the action may restart it
      }
    } catch (e) {
      setError(e);
    }
  };

  const st = (run && run.status) || {};
  const nodes = st.nodes || {};
  const list = useMemo(() => {
    const f = filter.toLowerCase();
    return Object.values(nodes)
      .filter((n) => !f || (n.displayName || n.name).toLowerCase().includes(f))
      .slice(0, 300);
  }, [run, filter]);
  const started = toEpoch(st.startedAt);
  const finished = toEpoch(st.finishedAt);
  return html`
    <div class="run-head">
      <h1>${name}</h1>
      ${st.phase ? html`<span id="run-phase"><${Phase} phase=${st.phase} /></span>` : null}
      <span class="muted">${st.progress || ""}</span>
      <span class="muted">${started ? fmtDuration((finished || Date.now() / 1000) - started) : ""}</span>
      <span class="spacer"></span>
      ${actions.filter((v) => actionFits(v, st)).map((v) => html`<button class=${`act act-${v}`} onClick=${() => act(v)}>${v}</button>`)}
      <button class="act danger" onClick=${() => act("delete")}>delete</button>
    </div>
    ${st.message ? html`<div class="muted">${st.message}</div>` : null}
    <${ErrorBox} error=${error} />
    <div class="run-body">
      <div class="node-list">
        <input placeholder="find node…" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
        ${list.map((n) => html`
          <button class=${"node-item" + (selected === n.id ? " sel" : "")} data-node-id=${n.id}
            data-node-name=${n.displayName || n.name} data-phase=${n.phase}
            onClick=${() => { setSelected(n.id); viewRef.current.select(n.id); }}>
            <${Phase} phase=${n.phase} /> ${n.displayName || n.name}
          </button>`)}
      </div>
      <div class="graph-wrap"><canvas id="dag" ref=${canvasRef}></canvas></div>
      ${selected && nodes[selected] ? html`<${NodePanel} run=${run} node=${nodes[selected]}
        onClose=${() => setSelected(null)} />` : null}
    </div>`;
}

function Params({ title, params }) {
  if (!params || !params.length) return null;
  return html`<h4>${title}</h4><table class="kvt">${params.map((p) =>
    html`<tr><td>${p.name}</td><td><code>${short(p.value ?? "", 200)}</code></td></tr>`)}</table>`;
}

function Preview({ run, nodeId, art }) {
  const [p, setP] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    api(artifactUrl(run, nodeId, art.name, "preview").replace(/^\/api\/v1/, ""))
      .then(setP).catch(setErr);
  }, [run, nodeId, art.name]);
  if (err) return html`<${ErrorBox} error=${err} />`;
  if (!p) return html`<p class="muted">loading preview…</p>`;
  if (p.kind === "csv") {
    return html`<table class="grid preview" data-preview="csv"><thead><tr>${p.columns.map((c) => html`<th>${c}</th>`)}</tr></thead>
      <tbody>${p.rows.map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table>`;
  }
  if (p.kind === "image") {
    return html`<img class="preview" data-preview="image" alt=${art.name}
      src=${`data:${p.mime};base64,${p.data}`} />`;
  }
  if (p.kind === "directory") return html`<ul class="preview" data-preview="directory">${p.entries.map((e) => html`<li>${e}</li>`)}</ul>`;
  return html`<pre class="preview" data-preview=${p.kind}>${p.text}${p.truncated ? "\n…" : ""}</pre>`;
}

function Logs({ run, node }) {
  const [text, setText] = useState("");
  const ref = useRef(null);
  useEffect(() => {
    const ctl = new AbortController();
    setText("");
    const live = node.phase === "Running" || node.phase === "Pending";
    streamText(`/runs/${encodeURIComponent(run)}/logs?node=${encodeURIComponent(node.id)}&follow=${live}`,
      (t) => setText((s) => (s + t).slice(-200000)), ctl.signal).catch(() => {});
    return () => ctl.abort();
  }, [run, node.id]);
  useEffect(() => {
    if (ref.current) ref.current.scrollTop = ref.current.scrollHeight;
  }, [text]);
  return html`<pre class="logs" id="node-logs" ref=${ref}>${text || "(no output yet)"}</pre>`;
}

function NodePanel({ run, node, onClose }) {
  const [tab, setTab] = useState("summary");
  const [preview, setPreview] = useState(null);
  const name = run.metadata.name;
  const inputs = node.inputs || {};
  const outputs = node.outputs || {};
  const arts = [...(outputs.artifacts || [])];
  const started = toEpoch(node.startedAt);
  const finished = toEpoch(node.finishedAt);
  const attempts = node.type === "Retry" ? (node.children || []).length : null;
  return html`
    <aside class="node-panel" id="node-panel" data-node-id=${node.id}>
      <div class="panel-head">
        <strong>${node.displayName || node.name}</strong> <${Phase} phase=${node.phase} />
        <button class="close" onClick=${onClose}>×</button>
      </div>
      <div class="tabs">
        ${["summary", "logs", "artifacts"].map((t) => html`<button id=${`tab-${t}`}
          class=${tab === t ? "on" : ""} onClick=${() => setTab(t)}>${t}</button>`)}
      </div>
      ${tab === "summary" ? html`
        <table class="kvt">
          <tr><td>type</td><td>${node.type}</td></tr>
          <tr><td>template</td><td>${node.templateName || "—"}</td></tr>
          <tr><td>started</td><td>${fmtTime(started)}</td></tr>
          <tr><td>finished</td><td>${fmtTime(finished)}</td></tr>
          <tr><td>duration</td><td>${started ? fmtDuration((finished || Date.now() / 1000) - started) : "—"}</td></tr>
          ${attempts != null ? html`<tr><td>attempts</td><td>${attempts}</td></tr>` : null}
          ${node.exitCode != null ? html`<tr><td>exit code</td><td>${node.exitCode}</td></tr>` : null}
          ${node.message ? html`<tr><td>message</td><td>${node.message}</td></tr>` : null}
        </table>
        <${Params} title="Inputs" params=${inputs.parameters} />
        <${Params} title="Outputs" params=${outputs.parameters} />
        ${outputs.result != null ? html`<h4>Result</h4><pre>${short(outputs.result, 2000)}</pre>` : null}` : null}
      ${tab === "logs" ? html`<${Logs} run=${name} node=${node} />` : null}
      ${tab === "artifacts" ? html`
        ${arts.length === 0 ? html`<p class="muted">No output artifacts.</p>` : null}
        <ul class="artifacts">${arts.map((a) => html`<li data-artifact=${a.name}>
          <strong>${a.name}</strong>
          <a href=${artifactUrl(name, node.id, a.name)} download>download</a>
          <button class="link" onClick=${() => setPreview(a)}>preview</button></li>`)}</ul>
        ${preview ? html`<${Preview} run=${name} nodeId=${node.id} art=${preview} />` : null}` : null}
    </aside>`;
}
