/*
 * Ulak console: progress of long work (no React).
 *
 * Markup: <section data-ulak-progress="STATUS_URL" data-finished="0|1"> with, inside it,
 *   elements [data-progress-field="NAME"] whose text is the status's NAME,
 *   a <progress> whose value/max are the status's done/total,
 *   and optionally a table [data-progress-errors] whose <tbody> lists status.errors
 *   ({row, column, message} each).
 * STATUS_URL answers JSON {state, state_label, done, total, finished, errors, ...}. While
 * `finished` is false the element polls it every second; at the end it stops, and the page shows
 * the end state without a reload. The section gets data-ulak-progress-state="<state>" after each
 * poll (browser tests wait on it).
 */

const INTERVAL_MS = 1000;

function render(section, status) {
  for (const el of section.querySelectorAll("[data-progress-field]")) {
    const value = status[el.dataset.progressField];
    if (value !== undefined) el.textContent = String(value);
  }
  const bar = section.querySelector("progress");
  if (bar) {
    bar.max = Math.max(1, status.total || 0);
    bar.value = status.done || 0;
  }
  const table = section.querySelector("[data-progress-errors] tbody");
  if (table && Array.isArray(status.errors)) {
    table.replaceChildren(
      ...status.errors.map((error) => {
        const row = document.createElement("tr");
        for (const key of ["row", "column", "message"]) {
          const cell = document.createElement("td");
          cell.textContent = String(error[key] ?? "");
          row.append(cell);
        }
        return row;
      }),
    );
  }
  section.dataset.ulakProgressState = status.state;
}

function follow(section) {
  const url = section.dataset.ulakProgress;
  if (section.dataset.finished === "1") return;
  const poll = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`status ${response.status}`);
      const status = await response.json();
      render(section, status);
      if (status.finished) return;
    } catch (error) {
      section.dataset.ulakProgressError = String(error.message || error);
    }
    window.setTimeout(poll, INTERVAL_MS);
  };
  window.setTimeout(poll, INTERVAL_MS);
}

function start() {
  for (const section of document.querySelectorAll("[data-ulak-progress]")) follow(section);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
