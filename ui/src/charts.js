// Metric charts (chart.js, tree-shaken): bars per metric across runs, lines for series
// and ROC curves; confusion matrices are drawn as coloured tables (see compare page).
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LineController, LineElement,
  LinearScale, PointElement, Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, Legend, LineController, LineElement,
  LinearScale, PointElement, Tooltip);

const PALETTE = ["#3b82f6", "#e5484d", "#22a06b", "#f5a524", "#8b5cf6", "#0ea5e9", "#64748b"];

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

export function barChart(canvas, labels, datasets) {
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: datasets.map((d, i) => ({ label: d.label, data: d.data, backgroundColor: color(i) })),
    },
    options: { animation: false, responsive: true, maintainAspectRatio: false },
  });
}

export function lineChart(canvas, datasets, { xLabel = "", yLabel = "", square = false } = {}) {
  return new Chart(canvas, {
    type: "line",
    data: {
      datasets: datasets.map((d, i) => ({
        label: d.label, data: d.points, borderColor: color(i), backgroundColor: color(i),
        pointRadius: 0, borderWidth: 2, parsing: false,
      })),
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: !square ? false : true,
      aspectRatio: 1,
      scales: {
        x: { type: "linear", title: { display: !!xLabel, text: xLabel }, ...(square ? { min: 0, max: 1 } : {}) },
        y: { type: "linear", title: { display: !!yLabel, text: yLabel }, ...(square ? { min: 0, max: 1 } : {}) },
      },
    },
  });
}
