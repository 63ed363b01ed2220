/*
 * The definition (trigger + workflow, the API's shape) as a graph: nodes for the trigger and each
 * step, edges for `workflow.start` and every outcome the schema names; and the edits the canvas
 * makes to it (connect, disconnect, add, delete, rename), each returning a new definition.
 */
import dagre from "@dagrejs/dagre";
import { outcomesOf } from "./schema.js";

export const TRIGGER_ID = "@trigger"; // not a step key: "@" is not allowed in one
export const START_HANDLE = "start";
export const NODE_WIDTH = 240;
export const NODE_HEIGHT = 96;

export function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/** The canvas's document: {trigger, workflow: {start, steps}} with the steps in their order. */
export function normalizeDoc(definition) {
  const workflow = definition?.workflow || {};
  return {
    trigger: definition?.trigger && typeof definition.trigger === "object" ? clone(definition.trigger) : {},
    workflow: {
      start: workflow.start ?? null,
      steps: workflow.steps && typeof workflow.steps === "object" ? clone(workflow.steps) : {},
    },
  };
}

export function getPath(value, path) {
  return path.reduce((current, part) => (current == null ? undefined : current[part]), value);
}

function setPath(value, path, target) {
  let current = value;
  for (const part of path.slice(0, -1)) {
    if (current[part] == null || typeof current[part] !== "object") return;
    current = current[part];
  }
  current[path[path.length - 1]] = target;
}

export function handlePath(handle) {
  return handle.split(".").map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

export function edgesOf(S, doc) {
  const steps = doc.workflow.steps;
  const edges = [];
  const start = doc.workflow.start;
  if (start && steps[start]) {
    edges.push({ id: `${TRIGGER_ID}:${START_HANDLE}`, source: TRIGGER_ID, sourceHandle: START_HANDLE, target: start });
  }
  for (const [key, step] of Object.entries(steps)) {
    for (const outcome of outcomesOf(S, step)) {
      const target = getPath(step, outcome.path);
      if (typeof target === "string" && steps[target] && target !== key) {
        // The outcome's name is on its dot (and in the panel), not on the line.
        edges.push({ id: `${key}:${outcome.handle}`, source: key, sourceHandle: outcome.handle, target,
          data: { label: outcome.label } });
      }
    }
  }
  return edges;
}

export function connect(doc, source, handle, target) {
  const next = clone(doc);
  if (source === TRIGGER_ID) {
    next.workflow.start = target;
  } else if (next.workflow.steps[source]) {
    setPath(next.workflow.steps[source], handlePath(handle), target);
  }
  return next;
}

export function disconnect(doc, source, handle) {
  const next = clone(doc);
  if (source === TRIGGER_ID) {
    next.workflow.start = null;
  } else if (next.workflow.steps[source]) {
    setPath(next.workflow.steps[source], handlePath(handle), null);
  }
  return next;
}

/** Every outcome of every step that leads to `key` is pointed at `to` (null: nowhere). */
function repoint(S, doc, key, to) {
  if (doc.workflow.start === key) doc.workflow.start = to;
  for (const step of Object.values(doc.workflow.steps)) {
    for (const outcome of outcomesOf(S, step)) {
      if (getPath(step, outcome.path) === key) setPath(step, outcome.path, to);
    }
  }
}

export function removeSteps(S, doc, keys) {
  const next = clone(doc);
  for (const key of keys) {
    if (!(key in next.workflow.steps)) continue;
    delete next.workflow.steps[key];
    repoint(S, next, key, null);
  }
  return next;
}

export function renameStep(S, doc, from, to) {
  const next = clone(doc);
  next.workflow.steps = Object.fromEntries(
    Object.entries(next.workflow.steps).map(([key, step]) => [key === from ? to : key, step]),
  );
  repoint(S, next, from, to);
  return next;
}

export function freeKey(doc, type) {
  for (let i = 1; ; i += 1) {
    const key = `${type}_${i}`;
    if (!(key in doc.workflow.steps)) return key;
  }
}

export function addStep(doc, key, step) {
  const next = clone(doc);
  next.workflow.steps[key] = step;
  return next;
}

/**
 * Positions by dagre (top to bottom) for the nodes `ids` (all when null), from the edges among
 * them; when only some are laid out, they go to the right of the others.
 */
export function layout(nodes, edges, ids = null) {
  const wanted = new Set(ids || nodes.map((node) => node.id));
  const chosen = nodes.filter((node) => wanted.has(node.id));
  if (!chosen.length) return {};
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "TB", nodesep: 48, ranksep: 72, marginx: 16, marginy: 16 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const node of chosen) {
    graph.setNode(node.id, { width: node.measured?.width || NODE_WIDTH, height: node.measured?.height || NODE_HEIGHT });
  }
  for (const edge of edges) {
    if (wanted.has(edge.source) && wanted.has(edge.target)) graph.setEdge(edge.source, edge.target);
  }
  dagre.layout(graph);
  const placed = {};
  for (const node of chosen) {
    const box = graph.node(node.id);
    placed[node.id] = { x: box.x - box.width / 2, y: box.y - box.height / 2 };
  }
  orderOutcomes(placed, edges.filter((edge) => wanted.has(edge.source) && wanted.has(edge.target)));
  const others = nodes.filter((node) => !wanted.has(node.id) && node.position);
  if (others.length) {
    const right = Math.max(...others.map((node) => node.position.x + (node.measured?.width || NODE_WIDTH)));
    const top = Math.min(...others.map((node) => node.position.y));
    for (const id of Object.keys(placed)) placed[id] = { x: placed[id].x + right + 80, y: placed[id].y + top };
  }
  return placed;
}

/**
 * Dagre does not know which dot an edge leaves from: where a step's outcomes lead to steps side by
 * side that only it leads to, put them left to right in the outcome order (`yes` left of `no`),
 * each moving with the steps below it that only it leads to.
 */
function orderOutcomes(placed, edges) {
  const parents = new Map();
  const children = new Map();
  for (const edge of edges) {
    if (!parents.has(edge.target)) parents.set(edge.target, new Set());
    parents.get(edge.target).add(edge.source);
    if (!children.has(edge.source)) children.set(edge.source, []);
    children.get(edge.source).push(edge.target); // in outcome order (edgesOf)
  }
  const below = (root) => {
    const owned = new Set([root]);
    const queue = [root];
    while (queue.length) {
      for (const child of children.get(queue.shift()) || []) {
        if (owned.has(child) || ![...parents.get(child)].every((parent) => owned.has(parent))) continue;
        owned.add(child);
        queue.push(child);
      }
    }
    return owned;
  };
  for (const [, targets] of children) {
    const distinct = [...new Set(targets)];
    if (distinct.length < 2) continue;
    if (!distinct.every((id) => placed[id] && parents.get(id).size === 1 && Math.abs(placed[id].y - placed[distinct[0]].y) < 50)) {
      continue;
    }
    const slots = distinct.map((id) => placed[id].x).sort((a, b) => a - b);
    const moves = distinct.map((id, i) => [id, slots[i] - placed[id].x]);
    const groups = moves.map(([id]) => below(id));
    if (groups.some((group, i) => groups.some((other, j) => i !== j && [...group].some((id) => other.has(id))))) continue;
    moves.forEach(([, dx], i) => {
      for (const id of groups[i]) placed[id] = { x: placed[id].x + dx, y: placed[id].y };
    });
  }
}

/** Rounded to a tenth of a pixel, as the server keeps them. */
export function roundPoint(point) {
  return { x: Math.round(point.x * 10) / 10, y: Math.round(point.y * 10) / 10 };
}

export function positionsOf(nodes) {
  const out = { steps: {} };
  for (const node of nodes) {
    if (node.id === TRIGGER_ID) out.trigger = roundPoint(node.position);
    else out.steps[node.id] = roundPoint(node.position);
  }
  return out;
}

/** The node list for `doc`: existing nodes kept (with their size and selection), positions from
 * `positions` where given, missing ones laid out. */
export function reconcile(S, nodes, doc, positions = null) {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const ids = [TRIGGER_ID, ...Object.keys(doc.workflow.steps)];
  const missing = [];
  const out = ids.map((id) => {
    const saved = id === TRIGGER_ID ? positions?.trigger : positions?.steps?.[id];
    const existing = byId.get(id);
    const type = id === TRIGGER_ID ? "trigger" : "step";
    if (existing) return saved ? { ...existing, position: { ...saved } } : existing;
    if (!saved) missing.push(id);
    return { id, type, position: saved ? { ...saved } : null, deletable: id !== TRIGGER_ID };
  });
  if (missing.length) {
    const placed = layout(out, edgesOf(S, doc), missing);
    return out.map((node) => (node.position ? node : { ...node, position: placed[node.id] || { x: 0, y: 0 } }));
  }
  return out;
}
