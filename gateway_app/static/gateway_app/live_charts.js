// The live page's charts: polls every worker's ring of samples and draws each figure as a
// small uPlot time series (vendored, loaded as the global `uPlot`), one panel per worker.

import { pollJson } from "./poll_json.js";

const POLL_MS = 1500;
const COLORS = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a"];
/** Each chart: its name, title and series (the sample's field, its label). */
const CHARTS = [
  { name: "connections", title: "Connections", series: [["connections", "connections"]] },
  {
    name: "sessions",
    title: "Sessions by status",
    series: [["live", "live"], ["running", "running"], ["detached", "detached"]],
  },
  { name: "turns", title: "Turns", series: [["running_turns", "running"], ["turns", "finished"]] },
  { name: "reaps", title: "Reaps", series: [["pending_reaps", "pending"], ["reaps", "reaped"]] },
  { name: "latency", title: "Turn latency (ms)", series: [["p50_ms", "p50"], ["p99_ms", "p99"]] },
];
const WIDTH = 260;
const HEIGHT = 130;

const root = document.querySelector("[data-testid=live-charts]");
const { uPlot } = window;
/** The panel of each worker by name: its element and its plots by chart name. */
const panels = new Map();

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function options(chart) {
  const text = cssVar("--body-quiet-color", "#666");
  const grid = { stroke: cssVar("--hairline-color", "#ddd"), width: 1 };
  return {
    title: chart.title,
    width: WIDTH,
    height: HEIGHT,
    scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [
      {},
      ...chart.series.map(([, label], i) => ({
        label,
        stroke: COLORS[i],
        width: 1.5,
        points: { size: 4 },
      })),
    ],
    axes: [
      { stroke: text, grid, ticks: grid },
      { stroke: text, grid, ticks: grid, size: 44 },
    ],
    legend: { live: false },
  };
}

function panelFor(worker) {
  let panel = panels.get(worker);
  if (panel) return panel;
  const element = document.createElement("div");
  element.className = "live-chart-worker";
  element.dataset.testid = "live-chart-worker";
  element.dataset.worker = worker;
  const heading = document.createElement("h3");
  heading.textContent = `Worker ${worker}`;
  element.append(heading);
  const plots = new Map();
  for (const chart of CHARTS) {
    const box = document.createElement("div");
    box.className = "live-chart";
    box.dataset.chart = chart.name;
    element.append(box);
    const data = [[], ...chart.series.map(() => [])];
    plots.set(chart.name, { box, plot: new uPlot(options(chart), data, box) });
  }
  panel = { element, plots };
  panels.set(worker, panel);
  return panel;
}

function draw(ring) {
  const panel = panelFor(ring.worker);
  const samples = ring.samples || [];
  const times = samples.map((s) => s.t);
  for (const chart of CHARTS) {
    const { box, plot } = panel.plots.get(chart.name);
    plot.setData([times, ...chart.series.map(([field]) => samples.map((s) => s[field] ?? null))]);
    box.dataset.points = String(times.length);
    // The first series' newest value ("" for none), for tests and for reading at a glance.
    const latest = samples.at(-1)?.[chart.series[0][0]];
    box.dataset.latest = latest == null ? "" : String(latest);
  }
  panel.element.dataset.samples = String(samples.length);
  panel.element.dataset.lastT = samples.length ? String(samples.at(-1).t) : "";
  panel.element.dataset.interval = String(ring.interval_s);
  return panel.element;
}

function render(data) {
  const shown = data.workers.map(draw);
  for (const [worker, panel] of panels) {
    if (!shown.includes(panel.element)) {
      for (const { plot } of panel.plots.values()) plot.destroy();
      panels.delete(worker);
    }
  }
  root.querySelector(".live-chart-workers").replaceChildren(...shown);
}

if (root && uPlot) {
  pollJson(root.dataset.samplesUrl, POLL_MS, render, (message) => {
    const error = root.querySelector("[data-testid=live-charts-error]");
    error.textContent = message ? `charts not updated: ${message}` : "";
    error.hidden = !message;
  });
}
