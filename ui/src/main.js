// The chute web UI: a small single-page app (preact + htm, no build-time JSX).
// Routes: /runs, /runs/:name, /pipelines, /pipelines/:id, /experiments,
// /experiments/:id, /compare?runs=a,b, /models.
import { render } from "preact";
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { RunPage } from "./run.js";
import { PipelinePage, PipelinesPage } from "./pipelines.js";
import { ComparePage, ExperimentPage, ExperimentsPage } from "./experiments.js";
import { RunsPage } from "./runs.js";
import { ModelsPage } from "./models.js";
import { navigate } from "./util.js";


// Intercept same-origin link clicks so navigation stays in the app.
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || e.metaKey || e.ctrlKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

function route(path) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const [top, id] = parts;
  if (!top || top === "runs") return id ? html`<${RunPage} name=${id} />` : html`<${RunsPage} />`;
  if (top === "pipelines") return id ? html`<${PipelinePage} id=${id} />` : html`<${PipelinesPage} />`;
  if (top === "experiments") return id ? html`<${ExperimentPage} id=${id} />` : html`<${ExperimentsPage} />`;
  if (top === "compare") return html`<${ComparePage} />`;
  if (top === "models") return html`<${ModelsPage} />`;
  return html`<p>No such page.</p>`;
}

function App() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);
  const top = path.split("/")[1] || "runs";
  const link = (href, label) =>
    html`<a href=${href} class=${top === href.slice(1) ? "active" : ""}>${label}</a>`;
  return html`
    <header>
      <a href="/runs" class="brand">chute</a>
      <nav>
        ${link("/runs", "Runs")} ${link("/pipelines", "Pipelines")}
        ${link("/experiments", "Experiments")} ${link("/models", "Models")}
      </nav>
      <form method="post" action="/logout" class="logout"><button>Sign out</button></form>
    </header>
    <main key=${path}>${route(path)}</main>`;
}

render(html`<${App} />`, document.getElementById("app"));
