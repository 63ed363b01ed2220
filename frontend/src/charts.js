/*
 * Ulak console: charts island (no React).
 *
 * Markup (Django template):
 *
 *   {{ chart|json_script:"deliveries-chart" }}
 *   <div class="ulak-chart"><canvas data-ulak-chart="deliveries-chart"></canvas></div>
 *   <script src="{% static 'ulak/console/charts.js' %}" defer></script>
 *
 * Each <canvas data-ulak-chart="ID"> takes its data from the JSON text of the element with id ID
 * (the <script type="application/json"> that Django's json_script writes). Data contract:
 *
 *   {
 *     "kind": "line" | "bar",
 *     "labels": ["2026-11-08", ...],                        // x axis, one per point
 *     "series": [{"label": "Sent", "values": [1, 2, ...]}, ...], // values: numbers or null (gap)
 *     "stacked": false                                      // optional, default false
 *   }
 *
 * The canvas's parent sets the height (CSS class `ulak-chart`); the chart fills it.
 * When drawn, the canvas gets data-ulak-chart-ready="1". When the JSON is missing or malformed,
 * nothing is thrown: a sibling <p class="ulak-chart-error"> says "Chart data unavailable", the
 * canvas is hidden and gets data-ulak-chart-ready="error".
 *
 * CSP (script-src 'self'; style-src 'self'): no eval, no inline <style>; Chart.js sets canvas
 * styles through the CSSOM only. Data never goes through inline scripts, only json_script.
 */
import {
  Chart,
  LineController,
  BarController,
  LineElement,
  PointElement,
  BarElement,
  CategoryScale,
  LinearScale,
  Tooltip,
  Legend,
  Filler,
} from "chart.js";

Chart.register(
  LineController,
  BarController,
  LineElement,
  PointElement,
  BarElement,
  CategoryScale,
  LinearScale,
  Tooltip,
  Legend,
  Filler,
);

// Okabe–Ito colour-blind-safe palette (yellow left out: too little contrast on white).
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"];
const KINDS = new Set(["line", "bar"]);
const ERROR_TEXT = "Chart data unavailable";

function isValue(v) {
  return v === null || (typeof v === "number" && Number.isFinite(v));
}

/** Parse and check the JSON of element `id`; returns the spec or null. */
function readSpec(id) {
  const source = id ? document.getElementById(id) : null;
  if (!source) return null;
  let spec;
  try {
    spec = JSON.parse(source.textContent);
  } catch {
    return null;
  }
  if (!spec || typeof spec !== "object" || !KINDS.has(spec.kind)) return null;
  if (!Array.isArray(spec.labels) || !Array.isArray(spec.series)) return null;
  for (const s of spec.series) {
    if (!s || typeof s !== "object" || !Array.isArray(s.values) || !s.values.every(isValue)) return null;
  }
  return spec;
}

function datasets(spec) {
  const stacked = spec.stacked === true;
  return spec.series.map((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const common = { label: String(s.label ?? ""), data: s.values, borderColor: colour };
    if (spec.kind === "bar") return { ...common, backgroundColor: colour, borderWidth: 0 };
    return {
      ...common,
      backgroundColor: colour + "33",
      borderWidth: 2,
      pointRadius: 2,
      tension: 0,
      fill: stacked ? (i === 0 ? "origin" : "-1") : false,
    };
  });
}

function fail(canvas) {
  const note = document.createElement("p");
  note.className = "ulak-chart-error";
  note.textContent = ERROR_TEXT;
  canvas.insertAdjacentElement("afterend", note);
  canvas.hidden = true;
  canvas.dataset.ulakChartReady = "error";
}

function draw(canvas) {
  if (canvas.dataset.ulakChartReady) return; // already drawn (or failed)
  const spec = readSpec(canvas.dataset.ulakChart);
  if (!spec) return fail(canvas);
  const stacked = spec.stacked === true;
  try {
    new Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels.map(String), datasets: datasets(spec) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: { stacked },
          y: { stacked, beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
  } catch {
    return fail(canvas);
  }
  canvas.dataset.ulakChartReady = "1";
}

function drawAll() {
  document.querySelectorAll("canvas[data-ulak-chart]").forEach(draw);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", drawAll);
} else {
  drawAll(); // script loaded after DOMContentLoaded (e.g. inserted late)
}
