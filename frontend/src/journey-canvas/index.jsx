/*
 * Ulak console: the journey canvas island (React Flow + dagre), on a campaign's canvas page.
 *
 * Markup (campaigns/templates/admin/campaigns/campaign/canvas.html):
 *   <script type="application/json" id="journey-canvas-data">{campaign, definition, positions, schema,
 *     editable, urls, activation_errors, check_debounce_ms}</script>
 *   <div id="journey-canvas" data-ulak-journey-canvas="journey-canvas-data"></div>
 * Styles are the bundle's own stylesheet (journey-canvas.css: React Flow's and the canvas's), linked
 * by the page: nothing is injected, so the page keeps the console's `style-src 'self'`.
 */
import "@xyflow/react/dist/style.css";
import "./canvas.css";
import React from "react";
import { createRoot } from "react-dom/client";
import { JourneyCanvas } from "./Canvas.jsx";

function start() {
  const mount = document.querySelector("[data-ulak-journey-canvas]");
  if (!mount) return;
  let data;
  try {
    data = JSON.parse(document.getElementById(mount.dataset.ulakJourneyCanvas).textContent);
  } catch (error) {
    mount.textContent = "The workflow canvas could not start; the campaign's page edits the workflow as JSON.";
    return;
  }
  createRoot(mount).render(<JourneyCanvas data={data} />);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
