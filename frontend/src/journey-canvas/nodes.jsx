/*
 * The canvas's nodes: the trigger (one outcome: the start step) and a step (an entry on top, one
 * handle per outcome the schema names at the bottom), each with a one-line summary and the
 * server's errors about it.
 */
import React, { useEffect } from "react";
import { Handle, Position, useUpdateNodeInternals } from "@xyflow/react";
import { START_HANDLE } from "./graph.js";
import { SimulationOnNode, StepNumbers, TotalNumbers } from "./live.jsx";

function durationText(value) {
  if (!value || typeof value !== "object") return "";
  const [unit] = Object.keys(value);
  return unit ? `${value[unit]} ${value[unit] === 1 ? unit.replace(/s$/, "") : unit}` : "";
}

function clip(text, length = 48) {
  const flat = String(text ?? "").replace(/\s+/g, " ").trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

/** A line saying what the step does (display only; the form shows every field). */
export function summary(step) {
  if (!step || typeof step !== "object") return "";
  const content = step.content && typeof step.content === "object" ? step.content : {};
  switch (step.type) {
    case "send":
      return `${step.channel || "?"}: ${step.message_id ? `message #${step.message_id}`
        : clip(content.subject || content.body || content.title || content.url || "(no content)", 40)}`;
    case "delay":
      return `wait ${durationText(step.duration) || "?"}`;
    case "time_window":
      return `${(step.days || []).join(", ") || "every day"} ${step.start || "?"}–${step.end || "?"}`;
    case "wait_until":
      return `${step.event?.name ? `event ${step.event.name}` : "a condition"}, at most ${durationText(step.within) || "?"}`;
    case "wait_for_reply":
      return `${step.channel || "?"} reply, at most ${durationText(step.within) || "?"}`;
    case "branch":
      return "if the condition is true";
    case "split":
      return `${(step.branches || []).length} branches, first match`;
    case "random_split":
      return `${(step.cohorts || []).length} cohorts by weight`;
    case "update_attributes":
      return clip(Object.keys(step.attributes || {}).join(", ") || "(no attributes)");
    case "update_object":
      return `object type ${step.object_type_id ?? "?"}`;
    case "webhook":
      return clip(`${(step.method || "POST").toUpperCase()} ${step.url || "?"}`);
    case "exit":
      return "end the run";
    default:
      return "";
  }
}

export function triggerSummary(trigger) {
  if (!trigger || !trigger.type) return "no trigger yet";
  const detail = trigger.name || trigger.field || trigger.attribute || trigger.segment_id || trigger.object_type_id
    || (trigger.keywords || []).join(", ") || trigger.channel || "";
  return clip(`${trigger.type.replace(/_/g, " ")}${detail !== "" ? `: ${detail}` : ""}`);
}

function Problems({ errors }) {
  if (!errors?.length) return null;
  const definition = errors.filter((error) => error.kind !== "activation");
  const shown = (definition.length ? definition : errors).slice(0, 2);
  return (
    <ul className="jc-node-errors" data-jc-node-errors={errors.length}>
      {shown.map((error, index) => (
        <li key={index} className={error.kind === "activation" ? "jc-warning" : "jc-error"}>
          {error.path ? <code>{error.path}</code> : null} {clip(error.message, 90)}
        </li>
      ))}
      {errors.length > shown.length && <li className="jc-more">and {errors.length - shown.length} more</li>}
    </ul>
  );
}

function stateClass(errors, selected, data = {}) {
  const definition = (errors || []).some((error) => error.kind !== "activation");
  const activation = (errors || []).some((error) => error.kind === "activation");
  return `${definition ? " jc-node-invalid" : activation ? " jc-node-warn" : ""}${selected ? " jc-node-selected" : ""}`
    + `${data.visit ? " jc-node-visited" : ""}${data.simulated && !data.visit && !data.current ? " jc-node-unvisited" : ""}`
    + `${data.diff ? ` jc-diff-${data.diff}` : ""}${data.current ? " jc-node-current" : ""}`;
}

export function TriggerNode({ data, selected }) {
  return (
    <div className={`jc-node jc-trigger${stateClass(data.errors, selected, data)}`} data-jc-node="@trigger">
      <div className="jc-node-head"><span className="jc-node-type">Trigger</span></div>
      <div className="jc-node-summary">{triggerSummary(data.trigger)}</div>
      <Problems errors={data.errors} />
      <TotalNumbers totals={data.totals} />
      {data.simulated && (
        <div className="jc-sim-node" data-jc-sim={data.visit ? "entered" : "not entered"}>
          <b>{data.visit ? "entered" : "would not enter"}</b>
        </div>
      )}
      <div className="jc-outcomes">
        <span className="jc-outcome" data-jc-outcome={START_HANDLE}>
          start
          <Handle type="source" position={Position.Bottom} id={START_HANDLE} className="jc-handle"
            isConnectable={data.editable} />
        </span>
      </div>
    </div>
  );
}

export function StepNode({ id, data, selected }) {
  const update = useUpdateNodeInternals();
  const handles = data.outcomes.map((outcome) => outcome.handle).join("|");
  useEffect(() => {
    update(id); // handles were added or removed (a branch, a cohort)
  }, [handles, id, update]);
  return (
    <div className={`jc-node jc-step jc-type-${data.step.type}${data.start ? " jc-start" : ""}${stateClass(data.errors, selected, data)}`}
      data-jc-node={id} data-jc-diff={data.diff || undefined}>
      <Handle type="target" position={Position.Top} id="in" className="jc-handle jc-handle-in" isConnectable={data.editable} />
      <div className="jc-node-head">
        <span className="jc-node-type">{data.step.type.replace(/_/g, " ")}</span>
        <code className="jc-node-key">{id}</code>
      </div>
      {data.step.name && <div className="jc-node-name">{data.step.name}</div>}
      <div className="jc-node-summary">{summary(data.step)}</div>
      <Problems errors={data.errors} />
      <StepNumbers figures={data.numbers} />
      <SimulationOnNode visit={data.visit} />
      {data.current && (
        <div className="jc-now" data-jc-now={id}>now here{data.next ? <span className="jc-help"> · next {data.next}</span> : null}</div>
      )}
      {data.outcomes.length > 0 && (
        <div className="jc-outcomes">
          {data.outcomes.map((outcome) => (
            <span key={outcome.handle} className="jc-outcome" data-jc-outcome={outcome.handle}>
              {outcome.label || "next"}
              <Handle type="source" position={Position.Bottom} id={outcome.handle} className="jc-handle"
                isConnectable={data.editable} />
            </span>
          ))}
        </div>
      )}
    </div>
  );
}

/** A step the compared version had and the newer one removed (the diff draws it dashed, apart). */
export function GhostNode({ id, data }) {
  return (
    <div className="jc-node jc-step jc-diff-removed" data-jc-node={id} data-jc-diff="removed">
      <div className="jc-node-head">
        <span className="jc-node-type">{String(data.step?.type || "?").replace(/_/g, " ")}</span>
        <code className="jc-node-key">{data.key}</code>
      </div>
      <div className="jc-node-summary">removed: {summary(data.step)}</div>
    </div>
  );
}

export const NODE_TYPES = { trigger: TriggerNode, step: StepNode, ghost: GhostNode };
