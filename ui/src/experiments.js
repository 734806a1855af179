// Experiments: list/create/archive; an experiment's runs with parameter and metric
// columns; compare selected runs side by side with bar, line and ROC charts and
// confusion matrices.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { ErrorBox, Phase, fmtDuration, fmtTime, navigate, short, usePoll } from "./util.js";

export function ExperimentsPage() {
  const [showArchived, setShowArchived] = useState(false);
  const [page, error, reload] = usePoll(`/experiments?limit=500&archived=${showArchived}`);
  const [err, setErr] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    const fd = new FormData(e.target);
    try {
      await api("/experiments", { method: "POST", json: { name: fd.get("name"), description: fd.get("description") || "" } });
      e.target.reset();
      reload();
    } catch (x) {
      setErr(x);
    }
  };
  const archive = async (x, verb) => {
    await api(`/experiments/${x.id}/${verb}`, { method: "POST" }).catch(setErr);
    reload();
  };
  return html`
    <h1>Experiments</h1>
    <form class="card inline" id="experiment-form" onSubmit=${create}>
      <input name="name" placeholder="name (lowercase, digits, -)" required />
      <input name="description" placeholder="description" />
      <button type="submit">Create experiment</button>
    </form>
    <${ErrorBox} error=${err || error} />
    <label><input type="checkbox" checked=${showArchived} onChange=${(e) => setShowArchived(e.target.checked)} /> archived</label>
    <table class="grid" id="experiments-table">
      <thead><tr><th>Name</th><th>Runs</th><th>Created</th><th>Description</th><th></th></tr></thead>
      <tbody>${((page && page.items) || []).map((x) => html`<tr data-experiment=${x.name}>
        <td><a href=${`/experiments/${x.id}`}>${x.name}</a></td><td>${x.runCount}</td>
        <td>${fmtTime(x.createdAt)}</td><td>${x.description}</td>
        <td><button onClick=${() => archive(x, x.archived ? "unarchive" : "archive")}>
          ${x.archived ? "unarchive" : "archive"}</button></td></tr>`)}</tbody>
    </table>`;
}

export function ExperimentPage({ id }) {
  const [exp, error] = usePoll(`/experiments/${encodeURIComponent(id)}`);
  const [runs] = usePoll(exp ? `/runs?experiment=${exp.id}&include=metrics&limit=500` : null, 5000);
  const [picked, setPicked] = useState(new Set());
  if (!exp) return html`<${ErrorBox} error=${error} />`;
  const items = (runs && runs.items) || [];
  const paramCols = [...new Set(items.flatMap((r) => Object.keys(r.parameters || {})))].sort();
  const metricCols = [...new Set(items.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  const toggle = (n) => {
    const s = new Set(picked);
    if (s.has(n)) s.delete(n);
    else s.add(n);
    setPicked(s);
  };
  return html`
    <h1>Experiment ${exp.name}</h1>
    <p class="muted">${exp.description} ${exp.archived ? "(archived)" : ""}</p>
    <button id="compare-runs" disabled=${picked.size < 2}
      onClick=${() => navigate(`/compare?runs=${[...picked].map(encodeURIComponent).join(",")}`)}>
      Compare ${picked.size} runs</button>
    <table class="grid" id="experiment-runs">
      <thead><tr><th></th><th>Run</th><th>Phase</th><th>Duration</th>
        ${paramCols.map((c) => html`<th class="param">${c}</th>`)}
        ${metricCols.map((c) => html`<th class="metric">${c}</th>`)}</tr></thead>
      <tbody>${items.map((r) => html`<tr data-run=${r.name}>
        <td><input type="checkbox" class="pick" checked=${picked.has(r.name)} onChange=${() => toggle(r.name)} /></td>
        <td><a href=${`/runs/${encodeURIComponent(r.name)}`}>${r.name}</a></td>
        <td><${Phase} phase=${r.phase} /></td><td>${fmtDuration(r.duration)}</td>
        ${paramCols.map((c) => html`<td>${short((r.parameters || {})[c] ?? "", 30)}</td>`)}
        ${metricCols.map((c) => html`<td class="num">${fmtNum((r.metrics || {})[c])}</td>`)}
      </tr>`)}</tbody>
    </table>`;
}

function fmtNum(v) {
  if (v == null) return "—";
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v);
}

function ChartBox({ make, deps }) {
  const ref = useRef(null);
  useEffect(() => {
    const chart = make(ref.current);
    return () => chart.destroy();
  }, deps);
  return html`<div class="chart"><canvas ref=${ref}></canvas></div>`;
}

function Confusion({ cm }) {
  const max = Math.max(1, ...cm.matrix.flat());
  return html`<table class="confusion"><tr><th></th>${cm.labels.map((l) => html`<th>${l}</th>`)}</tr>
    ${cm.matrix.map((row, i) => html`<tr><th>${cm.labels[i]}</th>${row.map((v) =>
      html`<td style=${`background:rgba(59,130,246,${(v / max).toFixed(2)});color:${v / max > 0.5 ? "#fff" : "#111"}`}>${v}</td>`)}</tr>`)}
  </table>`;
}

export function ComparePage() {
  const names = (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean);
  const [data, setData] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    Promise.all(names.map(async (n) => {
      const [run, metrics] = await Promise.all([
        api(`/runs/${encodeURIComponent(n)}`), api(`/runs/${encodeURIComponent(n)}/metrics`)]);
      return { name: n, run, metrics };
    })).then(setData).catch(setErr);
  }, [names.join(",")]);
  if (err) return html`<${ErrorBox} error=${err} />`;
  if (!data) return html`<p>Loading…</p>`;
  const params = (r) => ({
    ...Object.fromEntries(((r.run.spec.arguments || {}).parameters || []).map((p) => [p.name, p.value])),
    ...(r.run.status.storedParameters || {}),
  });
  const paramNames = [...new Set(data.flatMap((r) => Object.keys(params(r))))].sort();
  const scalarNames = [...new Set(data.flatMap((r) => Object.keys(r.metrics.scalars || {})))].sort();
  const seriesNames = [...new Set(data.flatMap((r) => (r.metrics.series || []).map((s) => s.name)))];
  return html`
    <h1>Compare runs</h1>
    <table class="grid" id="compare-table">
      <thead><tr><th></th>${data.map((r) => html`<th><a href=${`/runs/${r.name}`}>${r.name}</a></th>`)}</tr></thead>
      <tbody>
        <tr><td>phase</td>${data.map((r) => html`<td><${Phase} phase=${r.run.status.phase} /></td>`)}</tr>
        ${paramNames.map((p) => html`<tr class="param-row"><td>${p}</td>${data.map((r) => html`<td>${params(r)[p] ?? "—"}</td>`)}</tr>`)}
        ${scalarNames.map((m) => html`<tr class="metric-row" data-metric=${m}><td><strong>${m}</strong></td>
          ${data.map((r) => html`<td class="num">${fmtNum((r.metrics.scalars || {})[m])}</td>`)}</tr>`)}
      </tbody>
    </table>
    ${scalarNames.length ? html`<h3>Metrics</h3><${ChartBox} deps=${[data]} make=${(c) => barChart(c, scalarNames,
      data.map((r) => ({ label: r.name, data: scalarNames.map((m) => (r.metrics.scalars || {})[m] ?? null) })))} />` : null}
    ${seriesNames.map((s) => html`<h3>${s}</h3><${ChartBox} deps=${[data, s]} make=${(c) => lineChart(c,
      data.map((r) => ({ label: r.name, points: ((r.metrics.series || []).find((x) => x.name === s) || { points: [] }).points })),
      { xLabel: "step", yLabel: s })} />`)}
    ${data.some((r) => (r.metrics.roc || []).length) ? html`<h3>ROC</h3><${ChartBox} deps=${[data, "roc"]}
      make=${(c) => lineChart(c, data.flatMap((r) => (r.metrics.roc || []).map((x) => ({ label: `${r.name} ${x.name}`, points: x.points }))),
        { xLabel: "false positive rate", yLabel: "true positive rate" })} />` : null}
    <div class="row">${data.map((r) => (r.metrics.confusion || []).map((cm) => html`<div class="card">
      <strong>${r.name} · ${cm.name}</strong><${Confusion} cm=${cm} /></div>`))}</div>`;
}
