/*
 * The segment builder: nested and/or/not groups (react-querybuilder) whose rules are the registered
 * condition kinds, each edited from the field spec the server describes; a JSON view (the form's
 * own textarea); a live count and example people from the admin's preview endpoint, with the
 * server's errors shown on the node they concern.
 */
import React, { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { QueryBuilder, RuleGroupBodyComponents } from "react-querybuilder";
import { OPERATOR, ConvertError, leafKinds, placeErrors, toConditions, toQuery } from "./convert.js";
import { SpecEditor, defaultFor } from "./SpecEditor.jsx";

const COMBINATORS = [
  { name: "and", label: "all of (and)" },
  { name: "or", label: "any of (or)" },
];
const TRANSLATIONS = {
  addRule: { label: "+ Condition", title: "Add a condition" },
  addGroup: { label: "+ Group", title: "Add a group of conditions" },
  removeRule: { label: "×", title: "Remove this condition" },
  removeGroup: { label: "×", title: "Remove this group" },
  notToggle: { label: "not", title: "Negate this group" },
  fields: { title: "Kind of condition" },
  combinators: { title: "How the conditions combine" },
};

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input && input.value) return input.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

const cloneValue = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

function NodeErrors({ errors, group }) {
  if (!errors || !errors.length) return null;
  return (
    <ul className="sb-node-errors" role="alert">
      {errors.map((error, i) => (
        <li key={i}>{!group && error.sub ? <code>{error.sub}</code> : null} {error.message}</li>
      ))}
    </ul>
  );
}

function KindEditor(props) {
  const { context: ctx, rule, field, value, handleOnChange, disabled } = props;
  const kind = ctx.kinds[field];
  const errors = ctx.errors[rule.id] || [];
  return (
    <div className="sb-leaf" data-sb-kind={field}>
      <SpecEditor key={field} spec={kind ? kind.body : { type: "json" }} value={value} onChange={handleOnChange} path=""
        ctx={ctx} errors={errors} disabled={disabled} label={kind ? kind.label : field} />
      <NodeErrors errors={errors} />
    </div>
  );
}

function GroupBody(props) {
  const errors = props.context.errors[props.ruleGroup.id];
  return (
    <>
      <RuleGroupBodyComponents {...props} />
      <NodeErrors errors={errors} group />
    </>
  );
}

const NoOperator = () => null;
const CONTROLS = { valueEditor: KindEditor, operatorSelector: NoOperator, ruleGroupBodyElements: GroupBody };

function parseJson(text) {
  if (!text.trim()) return { tree: {} };
  try {
    return { tree: JSON.parse(text) };
  } catch (error) {
    return { problem: `The JSON is not valid: ${error.message}` };
  }
}

function Preview({ preview, empty }) {
  if (empty) {
    return <p className="sb-preview-text" data-state="empty">Add a condition to see who matches.</p>;
  }
  const { state } = preview;
  if (state === "invalid") {
    return <p className="sb-preview-text" data-state="invalid">Fix the conditions marked in red to see who matches.</p>;
  }
  if (state === "error") {
    return <p className="sb-preview-text sb-problem" data-state="error">{preview.message}</p>;
  }
  if (state === "ready" || (state === "loading" && preview.count !== undefined)) {
    return (
      <div data-state={state}>
        <p className="sb-preview-text">
          <strong id="segment-builder-count" data-count={preview.count}>{preview.count.toLocaleString("en")}</strong>
          {preview.count === 1 ? " person matches now" : " people match now"}
          {state === "loading" ? <span className="sb-muted"> (counting…)</span> : null}
        </p>
        {preview.people.length ? (
          <p className="sb-preview-text">For example:</p>
        ) : null}
        <ul id="segment-builder-people">
          {preview.people.map((person) => (
            <li key={person.id}><a href={person.url}>{person.label}</a>{person.email && person.email !== person.label ? <span className="sb-muted"> {person.email}</span> : null}</li>
          ))}
        </ul>
      </div>
    );
  }
  return <p className="sb-preview-text" data-state={state}>Counting…</p>;
}

/** Name suggestions from the builder's endpoints (`urls.attributes`, `urls.events`), cached per prefix. */
export function useSuggest(urls) {
  const suggestCache = useRef(new Map());
  return useCallback(async (source, prefix) => {
    const url = urls && urls[source];
    if (!url) return [];
    const key = `${source}:${prefix}`;
    if (suggestCache.current.has(key)) return suggestCache.current.get(key);
    try {
      const response = await fetch(`${url}?q=${encodeURIComponent(prefix)}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const names = response.ok ? (await response.json()).names || [] : [];
      suggestCache.current.set(key, names);
      return names;
    } catch {
      return [];
    }
  }, [urls]);
}

/**
 * The groups and conditions themselves (react-querybuilder), for any page: `query` (convert.js's
 * toQuery of a condition tree) and `onQueryChange`, `schema` (the server's builder schema: kinds and
 * their field specs), `errors` ({nodeId: [{sub, message}]}, placeErrors' byNode), `suggest` (useSuggest).
 * The segment page and the journey canvas's condition fields both use it.
 */
export function ConditionTree({ query, onQueryChange, schema, errors, suggest, disabled }) {
  const kinds = useMemo(() => Object.fromEntries(schema.kinds.map((kind) => [kind.name, kind])), [schema]);
  // Kinds the tree uses that the schema does not know (a kind removed since) stay editable as JSON.
  const fields = useMemo(() => {
    const known = schema.kinds.map((kind) => ({ name: kind.name, value: kind.name, label: kind.label }));
    for (const name of leafKinds(query)) {
      if (!kinds[name]) known.push({ name, value: name, label: `${name} (unknown kind)` });
    }
    return known;
  }, [schema, kinds, query]);
  const context = useMemo(() => ({ kinds, errors, suggest }), [kinds, errors, suggest]);
  const getDefaultValue = useCallback((rule) => {
    const kind = kinds[rule.field];
    return kind ? cloneValue(kind.default !== undefined ? kind.default : defaultFor(kind.body)) : {};
  }, [kinds]);
  const ruleClass = useCallback((rule) => (errors[rule.id] ? "sb-has-error" : ""), [errors]);
  const groupClass = useCallback((group) => (errors[group.id] ? "sb-has-error" : ""), [errors]);
  return (
    <QueryBuilder
      query={query}
      onQueryChange={onQueryChange}
      fields={fields}
      operators={[{ name: OPERATOR, value: OPERATOR, label: OPERATOR }]}
      combinators={COMBINATORS}
      getDefaultValue={getDefaultValue}
      getDefaultField={schema.kinds.length ? schema.kinds[0].name : undefined}
      controlElements={CONTROLS}
      translations={TRANSLATIONS}
      context={context}
      getRuleClassname={ruleClass}
      getRuleGroupClassname={groupClass}
      showNotToggle
      addRuleToNewGroups
      enableMountQueryChange={false}
      disabled={disabled}
    />
  );
}

export function SegmentBuilder({ data, textarea, rawField, kindSelect }) {
  const editable = Boolean(data.editable && textarea);
  const initial = useMemo(() => {
    if (data.conditions === null) return { query: toQuery({}), problem: "The conditions below are not valid JSON; fix them here or start again in the builder." };
    try {
      return { query: toQuery(data.conditions), problem: "" };
    } catch (error) {
      return { query: toQuery({}), problem: error instanceof ConvertError ? `The builder cannot show this definition: ${error.message}` : String(error) };
    }
  }, [data]);
  const [query, setQuery] = useState(initial.query);
  const [view, setView] = useState(initial.problem ? "json" : "builder");
  const [problem, setProblem] = useState(initial.problem);
  const [preview, setPreview] = useState({ state: "idle" });
  const [placed, setPlaced] = useState({ byNode: {}, other: [] });
  const [manual, setManual] = useState(kindSelect ? kindSelect.value === "manual" : data.kind === "manual");
  const [sentEmpty, setSentEmpty] = useState(false);

  // --- the live preview: debounced, the latest request wins -------------------------------------
  const timer = useRef(null);
  const inflight = useRef(null);
  const sequence = useRef(0);
  const schedule = useCallback((tree, nodes) => {
    window.clearTimeout(timer.current);
    const empty = tree && typeof tree === "object" && !Array.isArray(tree) && Object.keys(tree).length === 0;
    setSentEmpty(empty);
    if (empty) {
      sequence.current += 1;
      if (inflight.current) inflight.current.abort();
      setPlaced({ byNode: {}, other: [] });
      return;
    }
    setPreview((old) => ({ ...old, state: "loading" }));
    timer.current = window.setTimeout(async () => {
      if (inflight.current) inflight.current.abort();
      const controller = new AbortController();
      inflight.current = controller;
      const mine = ++sequence.current;
      try {
        const response = await fetch(data.urls.preview, {
          method: "POST",
          credentials: "same-origin",
          signal: controller.signal,
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({ conditions: tree, segment: data.segment }),
        });
        const body = await response.json().catch(() => null);
        if (mine !== sequence.current) return;
        if (response.ok && body) {
          setPreview({ state: "ready", count: body.count, people: body.people || [] });
          setPlaced({ byNode: {}, other: [] });
        } else if (response.status === 400 && body && Array.isArray(body.errors)) {
          setPreview({ state: "invalid" });
          setPlaced(placeErrors(body.errors, nodes));
        } else {
          setPreview({ state: "error", message: `The preview failed (HTTP ${response.status}).` });
        }
      } catch (error) {
        if (error.name !== "AbortError" && mine === sequence.current) {
          setPreview({ state: "error", message: "The preview could not be reached; the definition is still saved with the form." });
        }
      }
    }, data.debounce_ms || 400);
  }, [data]);
  useEffect(() => () => window.clearTimeout(timer.current), []);

  // At first, the stored (or posted) definition's count and errors.
  useEffect(() => {
    if (manual) return;
    if (view === "builder") {
      const { tree, nodes } = toConditions(query);
      schedule(tree, nodes);
    } else if (textarea) {
      const { tree } = parseJson(textarea.value);
      if (tree !== undefined) schedule(tree, null);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [manual]);

  // --- the form's field: shown as the JSON view only --------------------------------------------
  useEffect(() => {
    if (rawField) rawField.classList.toggle("sb-hidden", manual || view !== "json");
  }, [rawField, view, manual]);

  useEffect(() => {
    if (!kindSelect) return undefined;
    const follow = () => setManual(kindSelect.value === "manual");
    kindSelect.addEventListener("change", follow);
    return () => kindSelect.removeEventListener("change", follow);
  }, [kindSelect]);

  // In the JSON view the textarea is the definition: its count follows what is typed.
  useEffect(() => {
    if (view !== "json" || !textarea) return undefined;
    const typed = () => {
      const { tree, problem: bad } = parseJson(textarea.value);
      setProblem(bad || "");
      if (bad) {
        window.clearTimeout(timer.current);
        setPreview({ state: "idle" });
      } else {
        schedule(tree, null);
      }
    };
    textarea.addEventListener("input", typed);
    return () => textarea.removeEventListener("input", typed);
  }, [view, textarea, schedule]);

  const onQueryChange = useCallback((next) => {
    setQuery(next);
    const { tree, nodes } = toConditions(next);
    if (editable) textarea.value = JSON.stringify(tree, null, 2);
    schedule(tree, nodes);
  }, [editable, textarea, schedule]);

  const showJson = () => {
    setProblem("");
    setView("json"); // errors stay, listed by path
  };
  const showBuilder = () => {
    if (!textarea) {
      setView("builder");
      return;
    }
    const { tree, problem: bad } = parseJson(textarea.value);
    if (bad) {
      setProblem(bad);
      return;
    }
    try {
      const next = toQuery(tree);
      setQuery(next);
      setProblem("");
      setView("builder");
      const { nodes } = toConditions(next);
      schedule(toConditions(next).tree, nodes);
    } catch (error) {
      setProblem(error instanceof ConvertError ? `The builder cannot show this definition: ${error.message}` : String(error));
    }
  };

  const suggest = useSuggest(data.urls);
  if (manual) {
    return <p className="sb-note">A manual segment has no conditions: add people with “Upload CSV” or the API.</p>;
  }
  const otherErrors = view === "json" ? Object.values(placed.byNode).flat().concat(placed.other) : placed.other;
  const empty = view === "builder" ? query.rules.length === 0 && !query.not : sentEmpty;
  return (
    <div className="sb" data-view={view}>
      <div className="sb-tabs" role="tablist">
        <button type="button" role="tab" aria-selected={view === "builder"} className={view === "builder" ? "sb-tab sb-tab-on" : "sb-tab"}
          data-sb-view="builder" onClick={showBuilder}>Builder</button>
        <button type="button" role="tab" aria-selected={view === "json"} className={view === "json" ? "sb-tab sb-tab-on" : "sb-tab"}
          data-sb-view="json" onClick={showJson}>JSON</button>
        {!editable ? <span className="sb-muted"> read only</span> : null}
      </div>
      {problem ? <p className="sb-problem" role="alert" id="segment-builder-problem">{problem}</p> : null}
      {view === "builder" ? (
        <ConditionTree query={query} onQueryChange={onQueryChange} schema={data.schema} errors={placed.byNode}
          suggest={suggest} disabled={!editable} />
      ) : (
        <p className="sb-muted sb-json-hint">{editable ? "Edit the definition as JSON below; switch back to the builder to see it as conditions." : "The definition as JSON:"}</p>
      )}
      <div className="sb-preview" aria-live="polite">
        <Preview preview={preview} empty={empty} />
        {otherErrors.length ? (
          <ul className="sb-node-errors sb-other-errors" role="alert">
            {otherErrors.map((error, i) => <li key={i}>{error.sub ? <code>{error.sub}</code> : null} {error.message}</li>)}
          </ul>
        ) : null}
      </div>
    </div>
  );
}

