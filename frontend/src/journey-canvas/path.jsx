/*
 * Ulak console: a person's journeys drawn (the `journey-path` bundle), on the person page's Journeys
 * section (campaigns/person_sections.py, campaigns/templates/admin/campaigns/person/journeys.html).
 *
 * Markup:
 *   <div data-ulak-journey-paths="{schema, runs: [{id, definition, visits, current, ...}], drawn, more,
 *     all_url} as JSON, escaped"> ... <div data-jp-canvas="0"></div> ... </div>
 * (an attribute, not a json_script: the person page keeps no inline <script> element at all).
 * Each run's workflow (the run's version) is drawn read-only with the canvas's own graph, layout and
 * nodes (graph.js, nodes.jsx, the JSON Schema for the outcomes): the steps the run passed through
 * outlined in order with each visit's number, outcome and time, the connections taken drawn, the
 * others dimmed, and the step it is at now marked. Styles: journey-path.css (React Flow's and the
 * canvas's, bundled), linked by the section: nothing is injected.
 */
import "@xyflow/react/dist/style.css";
import "./canvas.css";
import "./path.css";
import React, { useEffect, useMemo } from "react";
import { createRoot } from "react-dom/client";
import {
  Controls, MarkerType, ReactFlow, ReactFlowProvider, useNodesInitialized, useNodesState, useReactFlow,
} from "@xyflow/react";
import { TRIGGER_ID, edgesOf, normalizeDoc, reconcile } from "./graph.js";
import { NODE_TYPES } from "./nodes.jsx";
import { makeSchema, outcomesOf } from "./schema.js";

/** The visits by step key and the connections taken ("source>target"), from the step log in order. */
export function runPath(run) {
  const byStep = {};
  for (const visit of run.visits) {
    (byStep[visit.key] ||= { visits: [], messages: [] }).visits.push({ ...visit, offset: visit.when });
  }
  const edges = new Set();
  let previous = run.earlier ? null : TRIGGER_ID; // the oldest visits left out: where it came from is unknown
  for (const visit of run.visits) {
    if (previous && visit.key !== previous) edges.add(`${previous}>${visit.key}`);
    previous = visit.key;
  }
  return { byStep, edges };
}

const FIT = { padding: 0.08, maxZoom: 0.9 };

/** Fits the whole run in view once its nodes have their sizes, from the box's own size (and again
 * when the box changes size). */
function FitWhenReady({ box }) {
  const flow = useReactFlow();
  const ready = useNodesInitialized();
  useEffect(() => {
    if (!ready || !box) return undefined;
    const fit = () => {
      const nodes = flow.getNodes();
      if (!nodes.length || !box.clientWidth || !box.clientHeight) return;
      const left = Math.min(...nodes.map((n) => n.position.x));
      const top = Math.min(...nodes.map((n) => n.position.y));
      const right = Math.max(...nodes.map((n) => n.position.x + (n.measured?.width || 0)));
      const bottom = Math.max(...nodes.map((n) => n.position.y + (n.measured?.height || 0)));
      const pad = 1 + 2 * FIT.padding;
      const zoom = Math.min(FIT.maxZoom, box.clientWidth / ((right - left) * pad), box.clientHeight / ((bottom - top) * pad));
      flow.setViewport({
        x: (box.clientWidth - (right - left) * zoom) / 2 - left * zoom,
        y: (box.clientHeight - (bottom - top) * zoom) / 2 - top * zoom,
        zoom,
      });
    };
    fit();
    if (typeof ResizeObserver === "undefined") return undefined;
    const observer = new ResizeObserver(fit);
    observer.observe(box);
    return () => observer.disconnect();
  }, [ready, flow, box]);
  return null;
}

function RunPath({ S, run, box }) {
  const doc = useMemo(() => normalizeDoc(run.definition), [run]);
  const path = useMemo(() => runPath(run), [run]);
  const nodes = useMemo(() => reconcile(S, [], doc, null).map((node) => {
    if (node.id === TRIGGER_ID) {
      return { ...node, draggable: false, selectable: false, connectable: false,
        data: { trigger: doc.trigger, errors: [], editable: false, simulated: true, visit: { visits: [], messages: [] } } };
    }
    const step = doc.workflow.steps[node.id] || { type: "exit" };
    return {
      ...node, draggable: false, selectable: false, connectable: false,
      data: { step, outcomes: outcomesOf(S, step), errors: [], editable: false, start: doc.workflow.start === node.id,
        simulated: true, visit: path.byStep[node.id] || null, current: run.current === node.id,
        next: run.current === node.id ? run.next_run_at : "" },
    };
  }), [S, doc, path, run]);
  // Held in state so that React Flow's measurements reach the nodes (the fit needs their sizes).
  const [shown, , onNodesChange] = useNodesState(nodes);
  const edges = useMemo(() => edgesOf(S, doc).map((edge) => {
    const taken = path.edges.has(`${edge.source}>${edge.target}`);
    return { ...edge, selectable: false, className: `jc-edge${taken ? " jc-edge-visited" : ""}`,
      markerEnd: { type: MarkerType.ArrowClosed, width: 14, height: 14 } };
  }), [S, doc, path]);
  return (
    <ReactFlowProvider>
      <ReactFlow nodes={shown} onNodesChange={onNodesChange} edges={edges} nodeTypes={NODE_TYPES} nodesDraggable={false} nodesConnectable={false}
        elementsSelectable={false} zoomOnScroll={false} preventScrolling={false}
        minZoom={0.1} maxZoom={1.5} deleteKeyCode={null}>
        <Controls showInteractive={false} fitViewOptions={FIT} />
        <FitWhenReady box={box} />
      </ReactFlow>
    </ReactFlowProvider>
  );
}

function start() {
  for (const holder of document.querySelectorAll("[data-ulak-journey-paths]")) {
    let data;
    try {
      data = JSON.parse(holder.dataset.ulakJourneyPaths);
    } catch (error) {
      continue; // the list of each run's steps stays, as without JavaScript
    }
    const S = makeSchema(data.schema);
    holder.querySelectorAll("[data-jp-canvas]").forEach((mount) => {
      const run = data.runs[Number(mount.dataset.jpCanvas)];
      if (!run) return;
      mount.classList.add("jp-drawn");
      createRoot(mount).render(<RunPath S={S} run={run} box={mount} />);
      const list = mount.parentElement.querySelector(".jp-visits-text");
      if (list) list.hidden = true; // the canvas shows the same visits on their steps
    });
    holder.dataset.ulakJourneyPathsReady = "1";
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
