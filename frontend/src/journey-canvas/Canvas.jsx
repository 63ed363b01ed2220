/*
 * The journey canvas: the campaign's trigger and workflow as a React Flow graph, a palette of step
 * types, a side panel with the selected node's form (generated from the JSON Schema), undo/redo,
 * the server's checks shown on the nodes, and Save with the revision the page was loaded with.
 */
import React, { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background, Controls, MarkerType, MiniMap, ReactFlow, ReactFlowProvider, applyNodeChanges, useReactFlow,
} from "@xyflow/react";
import { postJson } from "./api.js";
import {
  NODE_WIDTH, START_HANDLE, TRIGGER_ID, addStep, connect, disconnect, edgesOf, freeKey, getPath, layout, normalizeDoc,
  positionsOf, reconcile, removeSteps, renameStep,
} from "./graph.js";
import { guardUnsaved } from "./guard.js";
import { DiffPanel, PublishDialog, SimulatePanel, simulationPath, useNumbers } from "./live.jsx";
import { NODE_TYPES } from "./nodes.jsx";
import { ObjectFields, humanize } from "./SchemaForm.jsx";
import {
  makeSchema, newStep, outcomeProperties, outcomesOf, stepSchema, stepTypes, triggerSchema, triggerTypes,
} from "./schema.js";

const HISTORY_LIMIT = 200;
const COALESCE_MS = 1200;
const DRAG_TYPE = "application/x-ulak-step";

function snapshot(state) {
  return { doc: state.doc, positions: positionsOf(state.nodes) };
}

function keyOf(snap) {
  return JSON.stringify(snap);
}

/** The server's errors by node: `workflow.steps.<key>…` on that step, `trigger…` and
 * `workflow.start` on the trigger, the rest on the whole workflow. Paths become relative. */
function groupErrors(errors) {
  const byNode = {};
  const general = [];
  for (const error of errors) {
    const field = error.field || "";
    const step = /^workflow\.steps\.([^.]+)(?:\.(.*))?$/.exec(field);
    const add = (id, path) => (byNode[id] ||= []).push({ ...error, path });
    if (step) add(step[1], step[2] || "");
    else if (field === "trigger" || field.startsWith("trigger.")) add(TRIGGER_ID, field.slice("trigger.".length));
    else if (field === "workflow.start") add(TRIGGER_ID, "start");
    else general.push({ ...error, path: field });
  }
  return { byNode, general };
}

function colorMode() {
  const theme = document.documentElement.dataset.theme;
  return theme === "dark" || theme === "light" ? theme : "system";
}

function ErrorItems({ errors, className = "" }) {
  if (!errors.length) return null;
  return (
    <ul className={`jc-panel-errors ${className}`}>
      {errors.map((error, index) => (
        <li key={index} className={error.kind === "activation" ? "jc-warning" : "jc-error"}>
          {error.path ? <code>{error.path}</code> : null} {error.message}
        </li>
      ))}
    </ul>
  );
}

function TargetSelect({ id, value, keys, own, disabled, onChange }) {
  return (
    <select id={id} value={value ?? ""} disabled={disabled} onChange={(event) => onChange(event.target.value || null)}>
      <option value="">— the journey ends —</option>
      {keys.filter((key) => key !== own).map((key) => <option key={key} value={key}>{key}</option>)}
    </select>
  );
}

function KeyField({ S, stepKey, keys, editable, onRename }) {
  const [text, setText] = useState(stepKey);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    setText(stepKey);
    setProblem(null);
  }, [stepKey]);
  const apply = () => {
    if (text === stepKey) return;
    if (!S.stepKeyPattern.test(text)) setProblem("A step key is 1 to 64 letters, digits, _ or -.");
    else if (keys.includes(text)) setProblem("Another step has this key.");
    else {
      setProblem(null);
      onRename(text);
    }
  };
  return (
    <div className="jc-field">
      <label htmlFor="jc-step-key">Key</label>
      <input id="jc-step-key" type="text" value={text} disabled={!editable} onChange={(event) => setText(event.target.value)}
        onBlur={apply} onKeyDown={(event) => event.key === "Enter" && (event.preventDefault(), apply())} />
      <p className="jc-help">The step's stable key: runs, metrics and versions refer to it.</p>
      {problem && <p className="jc-json-problem">{problem}</p>}
    </div>
  );
}

function StepPanel({ S, stepKey, step, errors, editable, keys, urls, onStep, onRename, onDelete }) {
  const schema = stepSchema(S, step.type);
  if (!schema) return <p className="jc-error">Unknown step type {String(step.type)}.</p>;
  const outcomes = outcomesOf(S, step);
  const handles = new Set(outcomes.map((outcome) => outcome.handle));
  const fields = new Set(Object.keys(schema.properties || {}).filter((name) => name !== "type"));
  for (const name of outcomeProperties(S, schema)) fields.delete(name);
  const top = errors.filter((error) => !error.path || !fields.has(error.path.split(".")[0]) || handles.has(error.path));
  return (
    <div className="jc-panel-body" data-jc-panel={stepKey}>
      <h3>{humanize(step.type)}</h3>
      {schema.description && <p className="jc-help">{schema.description}</p>}
      <ErrorItems errors={top} />
      <KeyField S={S} stepKey={stepKey} keys={keys} editable={editable} onRename={onRename} />
      <fieldset className="jc-form" disabled={!editable}>
        <ObjectFields S={S} schema={schema} value={step} path={[]} errors={errors} disabled={!editable}
          onChange={(next) => onStep({ ...next, type: step.type })} />
      </fieldset>
      {step.type === "send" && step.message_id ? (
        <p><a className="jc-message-link" href={urls.message.replace("{id}", String(step.message_id))}>
          Open message #{step.message_id} in the message editor</a></p>
      ) : null}
      {outcomes.length > 0 && (
        <div className="jc-targets">
          <h4>Outcomes</h4>
          <p className="jc-help">Drag an outcome's dot onto a step, or choose the step here.</p>
          {outcomes.map((outcome) => (
            <div className="jc-field" key={outcome.handle} data-jc-target={outcome.handle}>
              <label htmlFor={`jc-target-${outcome.handle}`}>{outcome.label || "next"}</label>
              <TargetSelect id={`jc-target-${outcome.handle}`} value={getPath(step, outcome.path)} keys={keys} own={stepKey}
                disabled={!editable} onChange={(target) => onStep(null, outcome.handle, target)} />
            </div>
          ))}
        </div>
      )}
      {editable && <button type="button" className="jc-danger" id="jc-delete-step" onClick={onDelete}>Delete step</button>}
    </div>
  );
}

function TriggerPanel({ S, trigger, campaignType, errors, editable, keys, start, onTrigger, onStart }) {
  const types = triggerTypes(S, campaignType);
  const schema = trigger.type ? triggerSchema(S, trigger.type) : null;
  const fields = new Set(Object.keys(schema?.properties || {}).filter((name) => name !== "type"));
  const top = errors.filter((error) => !error.path || !fields.has(error.path.split(".")[0]));
  return (
    <div className="jc-panel-body" data-jc-panel={TRIGGER_ID}>
      <h3>Trigger</h3>
      <p className="jc-help">Who enters the journey, and when; the start step is where their run begins.</p>
      <ErrorItems errors={top} />
      <fieldset className="jc-form" disabled={!editable}>
        <div className="jc-field">
          <label htmlFor="jc-trigger-type">Type</label>
          <select id="jc-trigger-type" value={trigger.type || ""} onChange={(event) => {
            const type = event.target.value;
            if (!type) return onTrigger({});
            const allowed = new Set(Object.keys(triggerSchema(S, type)?.properties || {}));
            const kept = Object.fromEntries(Object.entries(trigger).filter(([name]) => allowed.has(name) && name !== "type"));
            return onTrigger({ type, ...kept });
          }}>
            <option value="">—</option>
            {types.map((option) => <option key={option.type} value={option.type}>{option.type}</option>)}
          </select>
          {schema?.description && <p className="jc-help">{schema.description}</p>}
        </div>
        {schema && (
          <ObjectFields S={S} schema={schema} value={trigger} path={[]} errors={errors} disabled={!editable}
            onChange={(next) => onTrigger({ ...next, type: trigger.type })} />
        )}
        <div className="jc-field" data-jc-target="start">
          <label htmlFor="jc-start">Start step</label>
          <TargetSelect id="jc-start" value={start} keys={keys} disabled={!editable} onChange={onStart} />
        </div>
      </fieldset>
    </div>
  );
}

function Editor({ data }) {
  // `conditions`: what the condition fields' segment builder needs (its schema and URLs), or why not.
  const S = useMemo(() => ({ ...makeSchema(data.schema), conditions: data.conditions || {} }), [data.schema, data.conditions]);
  const editable = Boolean(data.editable && data.urls.save);
  const flow = useReactFlow();
  const wrapper = useRef(null);
  const [state, setState] = useState(() => {
    const doc = normalizeDoc(data.definition);
    return { doc, nodes: reconcile(S, [], doc, data.positions) };
  });
  const stateRef = useRef(state);
  const history = useRef({ past: [], future: [], lastKey: null, lastAt: 0, drag: null });
  const [, setHistoryTick] = useState(0);
  const [campaign, setCampaign] = useState(data.campaign);
  const [baseline, setBaseline] = useState(() => keyOf(snapshot(state)));
  const [errors, setErrors] = useState(() => (data.activation_errors || []).map((e) => ({ ...e, kind: "activation" })));
  const [status, setStatus] = useState({ kind: "", text: "" });
  const [conflict, setConflict] = useState(null);
  const [selectedEdge, setSelectedEdge] = useState(null);
  const [saving, setSaving] = useState(false);
  // The live parts: figures on the nodes, the simulation, the publish choice, the diff.
  const [showNumbers, setShowNumbers] = useState(true);
  const [mode, setMode] = useState(""); // "" (editing) | "simulate" | "diff"
  const [simResult, setSimResult] = useState(null);
  const [diff, setDiff] = useState(null);
  const [publishing, setPublishing] = useState(null); // {preview, errors}
  const [versionList, setVersionList] = useState(() => data.versions || []);
  const [{ numbers, at: numbersAt, error: numbersError }, refreshNumbers] = useNumbers(
    data.urls.numbers, data.numbers_refresh_ms || 10000, showNumbers);
  const { doc, nodes } = state;
  const dirty = keyOf(snapshot(state)) !== baseline;
  const dirtyRef = useRef(dirty);
  dirtyRef.current = dirty;
  const guard = useRef(null);

  const update = useCallback((producer) => {
    const next = producer(stateRef.current);
    if (!next || next === stateRef.current) return;
    stateRef.current = next;
    setState(next);
  }, []);

  /** An edit that undo can take back; edits with the same `coalesce` key in a row make one step. */
  const commit = useCallback((producer, coalesce = null) => {
    const before = stateRef.current;
    const next = producer(before);
    if (!next || next === before) return;
    const h = history.current;
    const now = Date.now();
    if (!(coalesce && h.lastKey === coalesce && now - h.lastAt < COALESCE_MS)) {
      h.past.push(snapshot(before));
      if (h.past.length > HISTORY_LIMIT) h.past.shift();
    }
    h.future = [];
    h.lastKey = coalesce;
    h.lastAt = now;
    stateRef.current = next;
    setState(next);
    setHistoryTick((tick) => tick + 1);
  }, []);

  const restore = useCallback((snap) => {
    update((current) => ({ doc: snap.doc, nodes: reconcile(S, current.nodes, snap.doc, snap.positions) }));
  }, [S, update]);

  const undo = useCallback(() => {
    const h = history.current;
    if (!h.past.length) return;
    h.future.push(snapshot(stateRef.current));
    restore(h.past.pop());
    h.lastKey = null;
    setHistoryTick((tick) => tick + 1);
  }, [restore]);

  const redo = useCallback(() => {
    const h = history.current;
    if (!h.future.length) return;
    h.past.push(snapshot(stateRef.current));
    restore(h.future.pop());
    h.lastKey = null;
    setHistoryTick((tick) => tick + 1);
  }, [restore]);

  // The unsaved-changes guard, for the page's life.
  useEffect(() => {
    guard.current = guardUnsaved(() => dirtyRef.current);
    return () => guard.current.stop();
  }, []);

  // Undo and redo from the keyboard (not while typing in a field: it has its own).
  useEffect(() => {
    const onKey = (event) => {
      const target = event.target;
      if (target instanceof Element && target.closest("input, textarea, select, [contenteditable=true]")) return;
      if (!(event.ctrlKey || event.metaKey) || !editable) return;
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey) {
        event.preventDefault();
        undo();
      } else if ((key === "z" && event.shiftKey) || key === "y") {
        event.preventDefault();
        redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [undo, redo, editable]);

  // The server's checks of the edited workflow, a moment after each change.
  const checked = useRef(keyOf(doc));
  useEffect(() => {
    const key = keyOf(doc);
    if (key === checked.current) return undefined;
    const controller = new AbortController();
    const timer = window.setTimeout(async () => {
      try {
        const answer = await postJson(data.urls.check, { trigger: doc.trigger, workflow: doc.workflow },
          { signal: controller.signal });
        if (answer.status === 200 && answer.data) {
          checked.current = key;
          setErrors(answer.data.errors);
        }
      } catch (error) {
        if (error.name !== "AbortError") setStatus({ kind: "error", text: "The workflow could not be checked." });
      }
    }, data.check_debounce_ms || 500);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
  }, [doc, data.urls.check, data.check_debounce_ms]);

  // A save's outcome is said until the next edit; then the toolbar says the changes are unsaved.
  const edited = useRef(doc);
  useEffect(() => {
    if (edited.current === doc) return;
    edited.current = doc;
    setStatus((current) => (current.kind === "busy" ? current : { kind: "", text: "" }));
  }, [doc]);

  const grouped = useMemo(() => groupErrors(errors), [errors]);
  const keys = Object.keys(doc.workflow.steps);

  const path = useMemo(() => (mode === "simulate" ? simulationPath(simResult, TRIGGER_ID) : null), [mode, simResult]);
  const diffOf = useMemo(() => {
    if (mode !== "diff" || !diff) return {};
    const kinds = {};
    for (const key of diff.steps.added) kinds[key] = "added";
    for (const key of Object.keys(diff.steps.changed)) kinds[key] = "changed";
    return kinds;
  }, [mode, diff]);
  const figures = showNumbers ? numbers : null;

  const rfNodes = useMemo(() => {
    const simulated = Boolean(path && simResult);
    const drawn = nodes.map((node) => {
      if (node.id === TRIGGER_ID) {
        return {
          ...node, deletable: false,
          data: { trigger: doc.trigger, errors: grouped.byNode[TRIGGER_ID] || [], editable, totals: figures?.totals,
            simulated, visit: simulated && path.entered ? { visits: [], messages: [] } : null },
        };
      }
      const step = doc.workflow.steps[node.id] || { type: "exit" };
      return {
        ...node, deletable: editable,
        data: {
          step, outcomes: outcomesOf(S, step), errors: grouped.byNode[node.id] || [], editable,
          start: doc.workflow.start === node.id, numbers: figures?.steps?.[node.id],
          simulated, visit: simulated ? path.byStep[node.id] || null : null, diff: diffOf[node.id] || null,
        },
      };
    });
    if (mode === "diff" && diff?.steps.removed.length) {
      const right = Math.max(0, ...nodes.map((node) => (node.position?.x || 0) + (node.measured?.width || NODE_WIDTH)));
      const top = Math.min(0, ...nodes.map((node) => node.position?.y || 0));
      diff.steps.removed.forEach((key, index) => drawn.push({
        id: `@removed:${key}`, type: "ghost", position: { x: right + 80, y: top + index * 110 },
        data: { key, step: diff.workflows.against.steps?.[key] || {} }, draggable: false, selectable: false,
        connectable: false, deletable: false, initialWidth: NODE_WIDTH, initialHeight: 70,
      }));
    }
    return drawn;
  }, [nodes, doc, grouped, editable, S, figures, path, simResult, diffOf, mode, diff]);

  const rfEdges = useMemo(() => edgesOf(S, doc).map((edge) => {
    const visited = path?.edges.has(`${edge.source}>${edge.target}`);
    return {
      ...edge, selected: edge.id === selectedEdge, deletable: editable,
      className: `jc-edge${visited ? " jc-edge-visited" : ""}`, animated: Boolean(visited),
      markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
    };
  }), [S, doc, selectedEdge, editable, path]);

  const selected = nodes.find((node) => node.selected);
  const selectedEdgeObj = rfEdges.find((edge) => edge.id === selectedEdge);

  // --- React Flow's callbacks ---
  const onNodesChange = useCallback((changes) => {
    const kept = changes.filter((change) => change.type !== "remove"); // deletions: onDelete
    if (!kept.length) return;
    update((current) => ({ ...current, nodes: applyNodeChanges(kept, current.nodes) }));
    if (kept.some((change) => change.type === "select" && change.selected)) setSelectedEdge(null);
  }, [update]);

  const onEdgesChange = useCallback((changes) => {
    for (const change of changes) {
      if (change.type !== "select") continue;
      if (change.selected) setSelectedEdge(change.id);
      else setSelectedEdge((current) => (current === change.id ? null : current));
    }
  }, []);

  const onConnect = useCallback((connection) => {
    if (!editable || connection.target === TRIGGER_ID || connection.source === connection.target) return;
    commit((current) => ({ ...current, doc: connect(current.doc, connection.source, connection.sourceHandle, connection.target) }));
  }, [commit, editable]);

  const isValidConnection = useCallback(
    (connection) => connection.target !== TRIGGER_ID && connection.source !== connection.target, [],
  );

  const deleteElements = useCallback((nodeIds, edgeList) => {
    commit((current) => {
      const removed = nodeIds.filter((id) => id !== TRIGGER_ID);
      let next = removeSteps(S, current.doc, removed);
      for (const edge of edgeList) {
        if (!removed.includes(edge.source)) next = disconnect(next, edge.source, edge.sourceHandle);
      }
      return { doc: next, nodes: current.nodes.filter((node) => !removed.includes(node.id)) };
    });
    setSelectedEdge(null);
  }, [S, commit]);

  const onDelete = useCallback(({ nodes: gone, edges: cut }) => {
    if (editable) deleteElements(gone.map((node) => node.id), cut);
  }, [deleteElements, editable]);

  const onNodeDragStart = useCallback(() => {
    history.current.drag = snapshot(stateRef.current);
  }, []);

  const onNodeDragStop = useCallback(() => {
    const h = history.current;
    const before = h.drag;
    h.drag = null;
    if (!before || keyOf(before.positions) === keyOf(positionsOf(stateRef.current.nodes))) return;
    h.past.push(before);
    if (h.past.length > HISTORY_LIMIT) h.past.shift();
    h.future = [];
    h.lastKey = null;
    setHistoryTick((tick) => tick + 1);
  }, []);

  // --- edits from the palette and the panel ---
  /** A new step at `position` (moved down past any node it would cover). `after`: the selected
   * node, whose first outcome that leads nowhere is connected to the new step. */
  const addStepAt = useCallback((type, position, after = null) => {
    commit((current) => {
      const key = freeKey(current.doc, type);
      let spot = Number.isFinite(position.x) && Number.isFinite(position.y) ? { ...position } : { x: 0, y: 0 };
      const covers = (point) => current.nodes.some((node) => node.position
        && Math.abs(node.position.x - point.x) < NODE_WIDTH && Math.abs(node.position.y - point.y) < 90);
      for (let i = 0; i < 60 && covers(spot); i += 1) spot = { x: spot.x, y: spot.y + 60 };
      let doc2 = addStep(current.doc, key, newStep(S, type));
      if (after === TRIGGER_ID && !doc2.workflow.start) doc2 = connect(doc2, TRIGGER_ID, START_HANDLE, key);
      else if (after && doc2.workflow.steps[after]) {
        const free = outcomesOf(S, doc2.workflow.steps[after]).find((outcome) => !getPath(doc2.workflow.steps[after], outcome.path));
        if (free) doc2 = connect(doc2, after, free.handle, key);
      }
      return {
        doc: doc2,
        nodes: [...current.nodes.map((node) => (node.selected ? { ...node, selected: false } : node)),
          { id: key, type: "step", position: spot, selected: true, deletable: true }],
      };
    });
    setSelectedEdge(null);
  }, [S, commit]);

  const addAfterSelected = (type) => {
    const current = stateRef.current.nodes.find((node) => node.selected);
    if (current?.position) {
      const height = current.measured?.height || 90;
      addStepAt(type, { x: current.position.x, y: current.position.y + height + 60 }, current.id);
      return;
    }
    const box = wrapper.current.getBoundingClientRect();
    const center = flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 3 });
    addStepAt(type, { x: center.x - NODE_WIDTH / 2, y: center.y });
  };

  const onDrop = (event) => {
    const type = event.dataTransfer.getData(DRAG_TYPE);
    if (!type || !editable) return;
    event.preventDefault();
    const point = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
    addStepAt(type, { x: point.x - NODE_WIDTH / 2, y: point.y - 20 });
  };

  const onStep = (key) => (next, handle, target) => {
    if (handle !== undefined) {
      commit((current) => ({ ...current, doc: target ? connect(current.doc, key, handle, target) : disconnect(current.doc, key, handle) }));
      return;
    }
    commit((current) => {
      const doc2 = { ...current.doc, workflow: { ...current.doc.workflow, steps: { ...current.doc.workflow.steps, [key]: next } } };
      return { ...current, doc: doc2 };
    }, `step:${key}`);
  };

  const onRename = (from) => (to) => {
    commit((current) => ({
      doc: renameStep(S, current.doc, from, to),
      nodes: current.nodes.map((node) => (node.id === from ? { ...node, id: to } : node)),
    }));
  };

  const onTrigger = (next) => commit((current) => ({ ...current, doc: { ...current.doc, trigger: next } }), "trigger");

  const onStart = (target) => commit((current) => ({
    ...current, doc: target ? connect(current.doc, TRIGGER_ID, "start", target) : disconnect(current.doc, TRIGGER_ID, "start"),
  }));

  const select = (id) => {
    update((current) => ({ ...current, nodes: current.nodes.map((node) => ({ ...node, selected: node.id === id })) }));
    setSelectedEdge(null);
  };

  const tidy = () => {
    commit((current) => {
      const placed = layout(current.nodes, edgesOf(S, current.doc));
      return { ...current, nodes: current.nodes.map((node) => ({ ...node, position: placed[node.id] || node.position })) };
    });
    setFitRequest((n) => n + 1);
  };

  // Fit the view once React Flow has the new positions (its store is updated by a child's effect).
  const [fitRequest, setFitRequest] = useState(0);
  useEffect(() => {
    if (!fitRequest) return undefined;
    const frame = window.requestAnimationFrame(() => flow.fitView({ padding: 0.2, maxZoom: 1 }));
    return () => window.cancelAnimationFrame(frame);
  }, [fitRequest, flow]);

  // --- saving ---
  /** The dry count of saving the canvas now (a live campaign): the publish choice is asked first
   * when runs are live and the workflow changed. Answers whether the dialog was opened. */
  const askPublish = async (snap, errors = []) => {
    let answer;
    try {
      answer = await postJson(data.urls.preview, { trigger: snap.doc.trigger, workflow: snap.doc.workflow });
    } catch (error) {
      return false;
    }
    const preview = answer.status === 200 ? answer.data?.preview : null;
    if (!preview || !(preview.publish_required || (errors.length && preview.live_runs))) return false;
    setPublishing({ preview, errors });
    setStatus({ kind: "", text: "Say what happens to the runs already in it, then confirm." });
    return true;
  };

  const save = async (publish = undefined) => {
    if (!editable || saving) return;
    const snap = snapshot(stateRef.current);
    const body = { revision: campaign.revision, trigger: snap.doc.trigger, workflow: snap.doc.workflow, positions: snap.positions };
    setSaving(true);
    if (campaign.versioned && publish === undefined && data.urls.preview) {
      setStatus({ kind: "busy", text: "Counting the live runs…" });
      const asked = await askPublish(snap);
      if (asked) {
        setSaving(false);
        return;
      }
    }
    if (publish) body.publish = publish;
    setStatus({ kind: "busy", text: "Saving…" });
    let answer;
    try {
      answer = await postJson(data.urls.save, body);
    } catch (error) {
      setSaving(false);
      setStatus({ kind: "error", text: "Not saved: the server could not be reached." });
      return;
    }
    setSaving(false);
    const problems = answer.data?.errors || [];
    if (answer.status === 400 && problems.some((e) => e.field === "publish" || e.field?.startsWith("publish."))) {
      // Runs came or moved since the count, or the choice was refused: ask again with the new count.
      if (await askPublish(snap, problems)) return;
    }
    if (answer.status === 200) {
      const warnings = (answer.data.activation_errors || []).map((e) => ({ ...e, kind: "activation" }));
      const made = answer.data.campaign.version;
      if (made !== campaign.version && !versionList.some((v) => v.number === made)) {
        setVersionList((current) => [{ number: made, author: "", created: new Date().toISOString() }, ...current]);
      }
      setCampaign((current) => ({ ...current, ...answer.data.campaign }));
      setPublishing(null);
      refreshNumbers();
      setBaseline(keyOf(snap));
      checked.current = keyOf(snap.doc);
      setErrors(warnings);
      setConflict(null);
      setStatus({
        kind: "ok",
        text: `Saved: version ${answer.data.campaign.version}.${publish ? ` Runs already in it: ${publish.runs}.` : ""}${warnings.length
          ? ` Before it can be activated: ${warnings.length} ${warnings.length === 1 ? "problem" : "problems"}, shown in amber.` : ""}`,
      });
    } else if (answer.status === 409) {
      setConflict(problems[0]?.message || "The campaign was changed by someone else.");
      setStatus({ kind: "error", text: "Not saved: the campaign was changed by someone else." });
    } else if (answer.status === 400) {
      setErrors(problems.map((e) => ({ ...e, kind: "definition" })));
      setStatus({
        kind: "error",
        text: `Not saved: ${problems.length} ${problems.length === 1 ? "problem" : "problems"}, shown on the steps they concern.`,
      });
    } else {
      setStatus({ kind: "error", text: `Not saved: ${problems[0]?.message || `the server answered ${answer.status}`}` });
    }
  };

  const h = history.current;
  const invalid = errors.filter((e) => e.kind !== "activation").length;
  const warnings = errors.length - invalid;
  let panel;
  if (mode === "simulate") {
    panel = (
      <SimulatePanel data={data} dirty={dirty} result={simResult} onResult={setSimResult} onSelect={select}
        onClose={() => setMode("")} />
    );
  } else if (mode === "diff") {
    panel = (
      <DiffPanel data={data} versions={versionList} current={campaign.version} diff={diff}
        onDiff={(answer) => {
          setDiff(answer);
          setFitRequest((n) => n + 1); // the removed steps are drawn to the right
        }}
        onSelect={select} onClose={() => setMode("")} />
    );
  } else if (selected && selected.id === TRIGGER_ID) {
    panel = (
      <TriggerPanel S={S} trigger={doc.trigger} campaignType={data.campaign.type} errors={grouped.byNode[TRIGGER_ID] || []}
        editable={editable} keys={keys} start={doc.workflow.start} onTrigger={onTrigger} onStart={onStart} />
    );
  } else if (selected && doc.workflow.steps[selected.id]) {
    panel = (
      <StepPanel key={selected.id} S={S} stepKey={selected.id} step={doc.workflow.steps[selected.id]}
        errors={grouped.byNode[selected.id] || []} editable={editable} keys={keys} urls={data.urls}
        onStep={onStep(selected.id)} onRename={onRename(selected.id)} onDelete={() => deleteElements([selected.id], [])} />
    );
  } else if (selectedEdgeObj) {
    panel = (
      <div className="jc-panel-body" data-jc-panel="edge">
        <h3>Connection</h3>
        <p>From <code>{selectedEdgeObj.source === TRIGGER_ID ? "trigger" : selectedEdgeObj.source}</code>
          {selectedEdgeObj.data?.label ? ` (${selectedEdgeObj.data.label})` : ""} to <code>{selectedEdgeObj.target}</code>.</p>
        {editable && <button type="button" className="jc-danger" id="jc-delete-edge"
          onClick={() => deleteElements([], [selectedEdgeObj])}>Remove connection</button>}
      </div>
    );
  } else {
    panel = (
      <div className="jc-panel-body" data-jc-panel="">
        <h3>Workflow</h3>
        <p className="jc-help">Select the trigger or a step to edit it. {keys.length} {keys.length === 1 ? "step" : "steps"}.</p>
        <ErrorItems errors={grouped.general} />
        <ul className="jc-step-list">
          <li><button type="button" className="jc-link" onClick={() => select(TRIGGER_ID)}>Trigger</button></li>
          {keys.map((key) => (
            <li key={key}>
              <button type="button" className="jc-link" onClick={() => select(key)}>{key}</button>
              {" "}<span className="jc-help">{doc.workflow.steps[key].type}</span>
              {grouped.byNode[key]?.length ? <span className="jc-badge">{grouped.byNode[key].length}</span> : null}
            </li>
          ))}
        </ul>
      </div>
    );
  }

  return (
    <div className="jc-app" data-jc-ready="1" data-jc-dirty={dirty ? "1" : "0"} data-jc-revision={campaign.revision}>
      <div className="jc-toolbar">
        {editable && (
          <button type="button" id="jc-save" className="jc-primary" onClick={() => save()}
            disabled={saving || !dirty || Boolean(publishing)}>Save</button>
        )}
        {editable && <button type="button" id="jc-undo" onClick={undo} disabled={!h.past.length}>Undo</button>}
        {editable && <button type="button" id="jc-redo" onClick={redo} disabled={!h.future.length}>Redo</button>}
        {editable && <button type="button" id="jc-layout" onClick={tidy}>Tidy layout</button>}
        <button type="button" id="jc-fit" onClick={() => flow.fitView({ padding: 0.2, maxZoom: 1 })}>Fit view</button>
        <button type="button" id="jc-mode-simulate" aria-pressed={mode === "simulate"}
          onClick={() => setMode((current) => (current === "simulate" ? "" : "simulate"))}>Simulate</button>
        <button type="button" id="jc-mode-diff" aria-pressed={mode === "diff"}
          onClick={() => setMode((current) => (current === "diff" ? "" : "diff"))}>Compare versions</button>
        <label className="jc-numbers-toggle" title="Figures of every run the campaign has had (all time), read every few seconds">
          <input type="checkbox" id="jc-numbers-toggle" checked={showNumbers}
            onChange={(event) => setShowNumbers(event.target.checked)} /> Numbers
        </label>
        {showNumbers && (
          <span id="jc-numbers-status" className="jc-help" data-jc-numbers-at={numbersAt ? numbersAt.getTime() : ""}>
            {numbersError || (numbersAt ? `all time, read ${numbersAt.toLocaleTimeString()}` : "reading…")}
          </span>
        )}
        <span className="jc-version">Version {campaign.version} · {campaign.state}</span>
        <span id="jc-status" className={`jc-status jc-status-${status.kind}`} role="status">
          {status.text || (dirty ? "Unsaved changes." : "")}
        </span>
        <span id="jc-counts" className="jc-counts" data-invalid={invalid} data-warnings={warnings}>
          {invalid ? <span className="jc-error">{invalid} to fix</span> : null}
          {warnings ? <span className="jc-warning">{warnings} before activation</span> : null}
        </span>
      </div>
      {conflict && (
        <div className="jc-conflict" id="jc-conflict" role="alert">
          <p>Not saved: this campaign {conflict}</p>
          <button type="button" onClick={() => {
            guard.current?.release();
            window.location.reload();
          }}>Reload the canvas (lose my changes)</button>
        </div>
      )}
      {publishing && (
        <PublishDialog preview={publishing.preview} errors={publishing.errors} busy={saving}
          newSteps={Object.keys(doc.workflow.steps)} onConfirm={(publish) => save(publish)}
          onCancel={() => {
            setPublishing(null);
            setStatus({ kind: "", text: "" });
          }} />
      )}
      <div className="jc-body">
        {editable && (
          <div className="jc-palette" aria-label="Steps">
            <h4>Add a step</h4>
            <p className="jc-help">After the selected one, or drag it onto the canvas.</p>
            {stepTypes(S).map((option) => (
              <button type="button" key={option.type} className="jc-palette-item" data-jc-add={option.type} draggable
                title={option.description} onClick={() => addAfterSelected(option.type)}
                onDragStart={(event) => {
                  event.dataTransfer.setData(DRAG_TYPE, option.type);
                  event.dataTransfer.effectAllowed = "move";
                }}>
                {humanize(option.type)}
              </button>
            ))}
          </div>
        )}
        <div className="jc-flow" ref={wrapper} onDrop={onDrop}
          onDragOver={(event) => {
            if (editable && event.dataTransfer.types.includes(DRAG_TYPE)) {
              event.preventDefault();
              event.dataTransfer.dropEffect = "move";
            }
          }}>
          <ReactFlow nodes={rfNodes} edges={rfEdges} nodeTypes={NODE_TYPES} onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange} onConnect={onConnect} onDelete={onDelete} isValidConnection={isValidConnection}
            onNodeDragStart={onNodeDragStart} onNodeDragStop={onNodeDragStop} nodesDraggable={editable}
            nodesConnectable={editable} elementsSelectable deleteKeyCode={editable ? ["Backspace", "Delete"] : null}
            fitView fitViewOptions={{ padding: 0.2, maxZoom: 1 }} minZoom={0.2} maxZoom={2} colorMode={colorMode()}
            onPaneClick={() => setSelectedEdge(null)}>
            <Background gap={16} />
            <Controls showInteractive={false} />
            <MiniMap pannable zoomable nodeClassName={(node) => `jc-mini-${node.type}`} className="jc-minimap" />
          </ReactFlow>
        </div>
        <aside className="jc-panel" aria-label="Selected">{panel}</aside>
      </div>
    </div>
  );
}

export function JourneyCanvas({ data }) {
  return (
    <ReactFlowProvider>
      <Editor data={data} />
    </ReactFlowProvider>
  );
}
