// The DAG view: a layered layout (dagre) computed once per graph shape, drawn on a canvas.
// Phase changes only recolour (no relayout), so a 1,000-node run stays responsive while
// events stream in. Pan with drag, zoom with the wheel, click a node to select it.
import dagre from "@dagrejs/dagre";

export const PHASE_COLORS = {
  Pending: "#c4c9d0",
  Running: "#3b82f6",
  Succeeded: "#22a06b",
  Failed: "#e5484d",
  Error: "#c2410c",
  Skipped: "#eef0f3",
  Omitted: "#eef0f3",
  Suspended: "#f5a524",
};
const SMALL_TYPES = new Set(["StepGroup", "TaskGroup", "DAG", "Steps", "Retry"]);
const NODE_W = 150;
const NODE_H = 30;
const MIN_FIT = 0.12;

function phaseColor(n) {
  if (n.type === "Suspend" && n.phase === "Running") return PHASE_COLORS.Suspended;
  return PHASE_COLORS[n.phase] || PHASE_COLORS.Pending;
}

const GRID_MIN = 12; // siblings sharing all parents and children, above this, form a grid
const GRID_GAP = 8;

// Siblings with the same parents and the same children (loop items of a fan-out) are laid
// out as one block, a grid, instead of one dagre node each: a 1,000-item withItems is a
// handful of dagre nodes, so layout stays far under the 1 s budget and the fan-out reads
// as a block instead of a 150,000 px wide row.
function groupSiblings(nodes, edges) {
  const preds = new Map();
  const succs = new Map();
  for (const n of nodes) {
    preds.set(n.id, []);
    succs.set(n.id, []);
  }
  for (const [a, b] of edges) {
    if (succs.has(a) && preds.has(b)) {
      succs.get(a).push(b);
      preds.get(b).push(a);
    }
  }
  const byKey = new Map();
  for (const n of nodes) {
    const p = preds.get(n.id);
    if (!p.length) continue;
    const key = p.slice().sort().join(",") + "|" + succs.get(n.id).slice().sort().join(",");
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(n.id);
  }
  const groupOf = new Map();
  const groups = [];
  for (const members of byKey.values()) {
    if (members.length < GRID_MIN) continue;
    const id = `__grid${groups.length}`;
    groups.push({ id, members });
    for (const m of members) groupOf.set(m, id);
  }
  return { groupOf, groups };
}

// dagre (network-simplex ranking, crossing minimisation, Brandes-Köpf positions) for
// graphs up to this many boxes; above it, a linear-time layered layout.
const DAGRE_MAX = 300;
const NODESEP = 16;
const RANKSEP = 36;
const MARGIN = 20;

function dagreLayout(boxes, links) {
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: "TB", nodesep: NODESEP, ranksep: RANKSEP, edgesep: 6,
    marginx: MARGIN, marginy: MARGIN });
  g.setDefaultEdgeLabel(() => ({}));
  for (const [id, size] of boxes) g.setNode(id, { ...size });
  for (const [a, b] of links) g.setEdge(a, b);
  dagre.layout(g);
  const at = new Map(g.nodes().map((id) => [id, g.node(id)]));
  const lines = g.edges().map((e) => ({ from: e.v, to: e.w, points: g.edge(e).points }));
  const { width, height } = g.graph();
  return { at, lines, width, height };
}

// Longest-path ranks, one barycentre pass to order each rank under its parents, boxes
// packed left to right: O(nodes + edges). Loop bodies stay in columns under their item.
function fastLayout(boxes, links) {
  const kids = new Map([...boxes.keys()].map((id) => [id, []]));
  const parents = new Map([...boxes.keys()].map((id) => [id, []]));
  const indeg = new Map([...boxes.keys()].map((id) => [id, 0]));
  for (const [a, b] of links) {
    kids.get(a).push(b);
    parents.get(b).push(a);
    indeg.set(b, indeg.get(b) + 1);
  }
  const rank = new Map();
  const queue = [...boxes.keys()].filter((id) => indeg.get(id) === 0);
  for (const id of queue) rank.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const c of kids.get(id)) {
      rank.set(c, Math.max(rank.get(c) || 0, rank.get(id) + 1));
      indeg.set(c, indeg.get(c) - 1);
      if (indeg.get(c) === 0) queue.push(c);
    }
  }
  for (const id of boxes.keys()) if (!rank.has(id)) rank.set(id, 0); // on a cycle
  const ranks = [];
  for (const id of boxes.keys()) {
    const r = rank.get(id);
    (ranks[r] = ranks[r] || []).push(id);
  }
  const slot = new Map();
  const at = new Map();
  let y = MARGIN;
  let width = 0;
  const rows = [];
  ranks.forEach((ids, r) => {
    if (r > 0) {
      const bary = (id) => {
        const ps = parents.get(id).filter((p) => slot.has(p));
        return ps.length ? ps.reduce((sum, p) => sum + slot.get(p), 0) / ps.length : Infinity;
      };
      const keyed = ids.map((id, i) => [bary(id), i, id]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      ids = keyed.map((k) => k[2]);
    }
    let x = MARGIN;
    let h = 0;
    ids.forEach((id, i) => {
      const size = boxes.get(id);
      slot.set(id, i);
      at.set(id, { x: x + size.width / 2, y: 0, width: size.width, height: size.height });
      x += size.width + NODESEP;
      h = Math.max(h, size.height);
    });
    rows.push({ ids, y, h, w: x - NODESEP });
    width = Math.max(width, x - NODESEP + MARGIN);
    y += h + RANKSEP;
  });
  for (const row of rows) {
    const shift = (width - MARGIN - row.w) / 2; // centre each rank
    for (const id of row.ids) {
      const p = at.get(id);
      p.x += shift;
      p.y = row.y + row.h / 2;
    }
  }
  const lines = links.map(([a, b]) => {
    const p = at.get(a);
    const q = at.get(b);
    return { from: a, to: b, points: [{ x: p.x, y: p.y + p.height / 2 }, { x: q.x, y: q.y - q.height / 2 }] };
  });
  return { at, lines, width, height: y - RANKSEP + MARGIN };
}

export function layout(nodes, edges) {
  const { groupOf, groups } = groupSiblings(nodes, edges);
  const size = new Map();
  const boxes = new Map();
  for (const n of nodes) {
    const small = SMALL_TYPES.has(n.type);
    size.set(n.id, { width: small ? 16 : NODE_W, height: small ? 16 : NODE_H });
    if (!groupOf.has(n.id)) boxes.set(n.id, size.get(n.id));
  }
  const grids = new Map();
  for (const grp of groups) {
    const cell = size.get(grp.members[0]);
    // about 1.6 times wider than tall on screen, like the window it is shown in
    const aspect = (cell.height + GRID_GAP) / (cell.width + GRID_GAP);
    const cols = Math.min(grp.members.length, Math.max(4, Math.ceil(1.3 * Math.sqrt(grp.members.length * aspect))));
    const rows = Math.ceil(grp.members.length / cols);
    grids.set(grp.id, { ...grp, cols, cell });
    boxes.set(grp.id, { width: cols * (cell.width + GRID_GAP) - GRID_GAP,
      height: rows * (cell.height + GRID_GAP) - GRID_GAP });
  }
  const seen = new Set();
  const links = [];
  for (const [a0, b0] of edges) {
    const a = groupOf.get(a0) || a0;
    const b = groupOf.get(b0) || b0;
    const k = a + "\u0000" + b;
    if (a === b || seen.has(k) || !boxes.has(a) || !boxes.has(b)) continue;
    seen.add(k);
    links.push([a, b]);
  }
  const L = boxes.size > DAGRE_MAX ? fastLayout(boxes, links) : dagreLayout(boxes, links);
  const pos = new Map();
  for (const [id, p] of L.at) if (!grids.has(id)) pos.set(id, p);
  const frames = [];
  for (const grid of grids.values()) {
    const box = L.at.get(grid.id);
    frames.push(box);
    const left = box.x - box.width / 2;
    const top = box.y - box.height / 2;
    grid.members.forEach((m, i) => {
      const c = i % grid.cols;
      const r = Math.floor(i / grid.cols);
      pos.set(m, { x: left + c * (grid.cell.width + GRID_GAP) + grid.cell.width / 2,
        y: top + r * (grid.cell.height + GRID_GAP) + grid.cell.height / 2,
        width: grid.cell.width, height: grid.cell.height });
    });
  }
  return { pos, lines: L.lines, width: L.width, height: L.height, boxes: frames };
}

export class DagView {
  constructor(canvas, { onSelect, onFirstPaint } = {}) {
    this.canvas = canvas;
    this.onFirstPaint = onFirstPaint;
    this.ctx = canvas.getContext("2d");
    this.onSelect = onSelect || (() => {});
    this.nodes = new Map();
    this.layout = null;
    this.view = { k: 1, x: 0, y: 0 };
    this.selected = null;
    this.shape = "";
    this._frame = 0;
    this._bind();
    this._resize = new ResizeObserver(() => this.fit());
    this._resize.observe(canvas.parentElement);
  }

  destroy() {
    this._resize.disconnect();
  }

  // Replace the graph; relayout only if the set of nodes or edges changed.
  setGraph(nodes, edges) {
    const shape = nodes.map((n) => n.id).join("|") + "#" + edges.length;
    this.nodes = new Map(nodes.map((n) => [n.id, n]));
    if (shape !== this.shape) {
      this.shape = shape;
      const t0 = performance.now();
      this.layout = layout(nodes, edges);
      this.layoutMs = performance.now() - t0;
      this.fit();
    } else {
      this.draw();
    }
  }

  // Update phases (and other fields) of known nodes; returns false if a node is unknown.
  update(patches) {
    let known = true;
    for (const p of patches) {
      const n = this.nodes.get(p.id);
      if (n) Object.assign(n, p);
      else known = false;
    }
    this.draw();
    return known;
  }

  select(id) {
    this.selected = id;
    this.draw();
  }

  fit() {
    if (!this.layout) return;
    const r = this.canvas.parentElement.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, r.width * dpr);
    this.canvas.height = Math.max(1, r.height * dpr);
    this.canvas.style.width = r.width + "px";
    this.canvas.style.height = r.height + "px";
    // Fit the whole graph, but never below MIN_FIT: a rank hundreds of boxes wide would
    // become specks; show its middle instead (drag and zoom to see the rest).
    const fit = Math.min(1.2, r.width / (this.layout.width || 1), r.height / (this.layout.height || 1));
    const k = Math.max(fit, MIN_FIT);
    this.view = { k, x: (r.width - this.layout.width * k) / 2, y: 8 };
    this.draw();
  }

  draw() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._paint();
      if (this.onFirstPaint && this.layout) {
        const cb = this.onFirstPaint;
        this.onFirstPaint = null;
        cb();
      }
    });
  }

  _paint() {
    const { ctx, layout: L } = this;
    if (!L) return;
    const dpr = window.devicePixelRatio || 1;
    const { k, x, y } = this.view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr * k, 0, 0, dpr * k, dpr * x, dpr * y);
    ctx.lineWidth = 1 / Math.max(k, 0.5);
    for (const e of L.lines) {
      const to = this.nodes.get(e.to);
      const skipped = to && (to.phase === "Skipped" || to.phase === "Omitted");
      ctx.strokeStyle = skipped ? "#b8bec7" : "#8a94a3";
      ctx.setLineDash(skipped ? [4, 3] : []);
      ctx.beginPath();
      e.points.forEach((p, i) => (i ? ctx.lineTo(p.x, p.y) : ctx.moveTo(p.x, p.y)));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.strokeStyle = "#d5dae1";
    for (const b of L.boxes || []) {
      ctx.strokeRect(b.x - b.width / 2 - 4, b.y - b.height / 2 - 4, b.width + 8, b.height + 8);
    }
    const showText = k > 0.35;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (const [id, n] of this.nodes) {
      const p = L.pos.get(id);
      if (!p) continue;
      const left = p.x - p.width / 2;
      const top = p.y - p.height / 2;
      ctx.fillStyle = phaseColor(n);
      const skipped = n.phase === "Skipped" || n.phase === "Omitted";
      if (SMALL_TYPES.has(n.type)) {
        ctx.beginPath();
        ctx.arc(p.x, p.y, p.width / 2, 0, Math.PI * 2);
        ctx.fill();
      } else {
        ctx.fillRect(left, top, p.width, p.height);
        if (skipped) {
          ctx.setLineDash([4, 3]);
          ctx.strokeStyle = "#8a94a3";
          ctx.strokeRect(left, top, p.width, p.height);
          ctx.setLineDash([]);
        }
        if (showText) {
          ctx.fillStyle = skipped || n.phase === "Pending" ? "#333" : "#fff";
          const label = n.label.length > 20 ? n.label.slice(0, 19) + "…" : n.label;
          ctx.fillText(label, left + 8, p.y);
        }
      }
      if (id === this.selected) {
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 2.5 / Math.max(k, 0.5);
        ctx.strokeRect(left - 3, top - 3, p.width + 6, p.height + 6);
        ctx.lineWidth = 1 / Math.max(k, 0.5);
      }
    }
  }

  _hit(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    const gx = (clientX - r.left - this.view.x) / this.view.k;
    const gy = (clientY - r.top - this.view.y) / this.view.k;
    for (const [id, p] of this.layout.pos) {
      if (Math.abs(gx - p.x) <= p.width / 2 + 2 && Math.abs(gy - p.y) <= p.height / 2 + 2) return id;
    }
    return null;
  }

  _bind() {
    let drag = null;
    this.canvas.addEventListener("mousedown", (e) => {
      drag = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false };
    });
    window.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      this.view.x = drag.vx + dx;
      this.view.y = drag.vy + dy;
      this.draw();
    });
    window.addEventListener("mouseup", (e) => {
      if (drag && !drag.moved && this.layout) {
        const id = this._hit(e.clientX, e.clientY);
        if (id) {
          this.select(id);
          this.onSelect(id);
        }
      }
      drag = null;
    });
    this.canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = this.canvas.getBoundingClientRect();
      const mx = e.clientX - r.left;
      const my = e.clientY - r.top;
      const f = Math.exp(-e.deltaY * 0.0015);
      const k = Math.min(4, Math.max(0.03, this.view.k * f));
      this.view.x = mx - ((mx - this.view.x) * k) / this.view.k;
      this.view.y = my - ((my - this.view.y) * k) / this.view.k;
      this.view.k = k;
      this.draw();
    }, { passive: false });
  }
}

// Nodes and edges of a run in Argo's shape (status.nodes, children lists).
export function runGraph(status) {
  const nodes = [];
  const edges = [];
  for (const n of Object.values((status && status.nodes) || {})) {
    nodes.push({ id: n.id, label: n.displayName || n.name, phase: n.phase, type: n.type });
    for (const c of n.children || []) edges.push([n.id, c]);
  }
  nodes.sort((a, b) => (a.id < b.id ? -1 : 1));
  return { nodes, edges };
}
