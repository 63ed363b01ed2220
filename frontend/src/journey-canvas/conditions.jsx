/*
 * A condition field of the canvas's forms (a step's `only_if`, a branch's or a split branch's
 * `condition`, a wait's `condition`): the segment builder's groups and conditions
 * (frontend/src/segment-builder/, its ConditionTree) with a JSON view for power users. What the
 * builder needs comes from the page (`conditions`: the server's builder schema and the name
 * suggestion URLs, canvas_data in campaigns/admin_canvas.py); a member who may not see people gets
 * no schema, and the field stays a JSON box saying why. The server's check names errors by field
 * path (`condition.and.1.attribute.op`, relative to the step): they are placed on the node they
 * concern, as on the segment page.
 */
import React, { useMemo, useRef, useState } from "react";
import { ConditionTree, useSuggest } from "../segment-builder/SegmentBuilder.jsx";
import { ConvertError, placeErrors, toConditions, toQuery } from "../segment-builder/convert.js";

const CONDITION_REF = "#/$defs/condition";

/** Whether a property's schema is a condition tree (the definition's `condition`, or it or null). */
export function isConditionPart(part) {
  if (!part) return false;
  if (part.$ref === CONDITION_REF) return true;
  return Array.isArray(part.anyOf) && part.anyOf.some((inner) => inner.$ref === CONDITION_REF)
    && part.anyOf.every((inner) => inner.$ref === CONDITION_REF || inner.type === "null");
}

const isEmpty = (value) => value === undefined || value === null
  || (typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0);

function queryOf(value) {
  try {
    return { query: toQuery(isEmpty(value) ? {} : value), problem: "" };
  } catch (error) {
    return { query: null, problem: error instanceof ConvertError ? `The builder cannot show this condition: ${error.message}` : String(error) };
  }
}

/** The step's errors under `key` (the field's path), renamed from `conditions` as convert.js names nodes. */
function asTreeErrors(errors, key) {
  return errors
    .filter((error) => error.path === key || (error.path || "").startsWith(`${key}.`))
    .map((error) => ({ ...error, path: `conditions${error.path.slice(key.length)}` }));
}

export function ConditionField({ S, id, value, onChange, pathKey, errors, disabled, JsonBox }) {
  const setup = S.conditions || {};
  const start = useMemo(() => queryOf(value), []); // eslint-disable-line react-hooks/exhaustive-deps
  const [query, setQuery] = useState(start.query);
  const [view, setView] = useState(setup.schema && start.query ? "builder" : "json");
  const [problem, setProblem] = useState(start.problem);
  const emitted = useRef(value);
  const suggest = useSuggest(setup.urls);

  // Changed from outside (undo, another node selected with the same form): read it again.
  if (JSON.stringify(emitted.current ?? null) !== JSON.stringify(value ?? null)) {
    emitted.current = value;
    const next = queryOf(value);
    if (next.query) {
      setQuery(next.query);
      setProblem("");
    } else {
      setView("json");
      setProblem(next.problem);
    }
  }

  const nodes = useMemo(() => (query ? toConditions(query).nodes : []), [query]);
  const placed = useMemo(() => placeErrors(asTreeErrors(errors, pathKey), nodes), [errors, pathKey, nodes]);

  if (!setup.schema) {
    return (
      <div className="jc-condition" data-jc-condition-view="json">
        <p className="jc-help jc-condition-why">{setup.reason || "The condition builder is not available here."}</p>
        <JsonBox id={id} value={value} onChange={onChange} disabled={disabled} />
      </div>
    );
  }

  const change = (next) => {
    setQuery(next);
    const { tree } = toConditions(next);
    const out = isEmpty(tree) ? undefined : tree;
    emitted.current = out;
    onChange(out);
  };
  const showBuilder = () => {
    const next = queryOf(value);
    if (!next.query) {
      setProblem(next.problem);
      return;
    }
    setQuery(next.query);
    setProblem("");
    setView("builder");
  };

  return (
    <div className="jc-condition sb" data-jc-condition-view={view}>
      <div className="sb-tabs" role="tablist">
        <button type="button" role="tab" aria-selected={view === "builder"} className={view === "builder" ? "sb-tab sb-tab-on" : "sb-tab"}
          data-sb-view="builder" onClick={showBuilder}>Builder</button>
        <button type="button" role="tab" aria-selected={view === "json"} className={view === "json" ? "sb-tab sb-tab-on" : "sb-tab"}
          data-sb-view="json" onClick={() => { setProblem(""); setView("json"); }}>JSON</button>
      </div>
      {problem ? <p className="sb-problem" role="alert">{problem}</p> : null}
      {view === "builder" ? (
        <ConditionTree query={query} onQueryChange={change} schema={setup.schema} errors={placed.byNode}
          suggest={suggest} disabled={disabled} />
      ) : (
        <JsonBox id={id} value={value} onChange={(next) => { emitted.current = next; onChange(next); }} disabled={disabled} />
      )}
      {(view === "json" ? Object.values(placed.byNode).flat().concat(placed.other) : placed.other).length ? (
        <ul className="sb-node-errors sb-other-errors jc-field-errors" role="alert">
          {(view === "json" ? Object.values(placed.byNode).flat().concat(placed.other) : placed.other).map((error, i) => (
            <li key={i} className="jc-error">{error.sub ? <code>{error.sub}</code> : null} {error.message}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
