/*
 * Renders a condition kind's body from the field spec the server describes
 * (profiles/segments/builder.py lists the spec types). Every input carries data-sb-path, its path
 * inside the body ("within.value", "filters.0.operator"), and is marked invalid when the server
 * named that path.
 */
import React, { useEffect, useId, useRef, useState } from "react";
import { isPlainObject } from "./convert.js";

const join = (path, key) => (path === "" ? String(key) : `${path}.${key}`);
const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

function invalidAt(errors, path) {
  return errors.some((e) => e.sub === path || e.sub.startsWith(`${path}.`));
}

/** The value a spec starts from. */
export function defaultFor(spec) {
  switch (spec && spec.type) {
    case "object": {
      const out = {};
      for (const field of spec.fields || []) {
        if (!field.optional) out[field.key] = field.default !== undefined ? clone(field.default) : defaultFor(field.spec);
      }
      return out;
    }
    case "one_of": {
      const first = (spec.options || [])[0];
      return first ? { [first.key]: first.default !== undefined ? clone(first.default) : defaultFor(first.spec) } : {};
    }
    case "list":
      return [];
    case "integer":
      return spec.min !== undefined ? spec.min : 0;
    case "boolean":
      return true;
    case "choice":
      return (spec.choices || []).length ? spec.choices[0].value : null;
    case "date_range":
      return ["", ""];
    case "json":
      return {};
    default:
      return "";
  }
}

const fieldDefault = (field) => (field.default !== undefined ? clone(field.default) : defaultFor(field.spec));

function omitted(field, object) {
  if (!field.omit_when) return false;
  return Object.entries(field.omit_when).some(([key, values]) => values.includes(object[key]));
}

function ObjectEditor({ spec, value, onChange, path, ctx, errors, disabled }) {
  const object = isPlainObject(value) ? value : {};
  const fields = spec.fields || [];
  const settle = (next) => {
    for (const field of fields) {
      if (!field.omit_when) continue;
      if (omitted(field, next)) delete next[field.key];
      else if (!(field.key in next) && !field.optional) next[field.key] = fieldDefault(field);
    }
    return next;
  };
  const set = (field, v) => onChange(settle({ ...object, [field.key]: v }));
  const add = (field) => {
    const next = { ...object, [field.key]: fieldDefault(field) };
    if (field.group) {
      for (const other of fields) if (other !== field && other.group === field.group) delete next[other.key];
    }
    onChange(settle(next));
  };
  const remove = (field) => {
    const next = { ...object };
    delete next[field.key];
    onChange(settle(next));
  };
  const absent = fields.filter((field) => field.optional && !(field.key in object) && !omitted(field, object));
  return (
    <span className="sb-object">
      {fields.map((field) => {
        if (omitted(field, object) || (field.optional && !(field.key in object))) return null;
        const fieldPath = join(path, field.key);
        return (
          <span className={`sb-part sb-part-${field.spec.type}`} key={field.key}>
            {field.label ? <span className="sb-label">{field.label}</span> : null}
            <SpecEditor spec={field.spec} value={object[field.key]} onChange={(v) => set(field, v)} path={fieldPath}
              ctx={ctx} errors={errors} disabled={disabled} siblings={object}
              label={field.label || field.spec.placeholder || field.key} />
            {field.suffix ? <span className="sb-label">{field.suffix}</span> : null}
            {field.optional && !disabled ? (
              <button type="button" className="sb-remove" data-sb-remove={fieldPath} title={`Remove “${field.label || field.key}”`}
                onClick={() => remove(field)}>×</button>
            ) : null}
          </span>
        );
      })}
      {!disabled && absent.length ? (
        <span className="sb-adders">
          {absent.map((field) => (
            <button type="button" className="sb-add" key={field.key} data-sb-add={join(path, field.key)} onClick={() => add(field)}>
              + {field.label || field.key}
            </button>
          ))}
        </span>
      ) : null}
    </span>
  );
}

function OneOfEditor({ spec, value, onChange, path, ctx, errors, disabled }) {
  const object = isPlainObject(value) ? value : {};
  const options = spec.options || [];
  const key = Object.keys(object)[0];
  const option = options.find((o) => o.key === key);
  const choose = (event) => {
    const chosen = options.find((o) => o.key === event.target.value);
    if (chosen) onChange({ [chosen.key]: chosen.default !== undefined ? clone(chosen.default) : defaultFor(chosen.spec) });
  };
  return (
    <span className="sb-object">
      <select data-sb-path={join(path, "$key")} value={option ? key : ""} onChange={choose} disabled={disabled}
        className={invalidAt(errors, path) && !option ? "sb-invalid" : undefined} aria-label="Which">
        {option ? null : <option value="">{key ? `${key} (unknown)` : "— choose —"}</option>}
        {options.map((o) => <option key={o.key} value={o.key}>{o.label || o.key}</option>)}
      </select>
      {option ? (
        <SpecEditor spec={option.spec} value={object[key]} onChange={(v) => onChange({ [key]: v })} path={join(path, key)}
          ctx={ctx} errors={errors} disabled={disabled} siblings={object} label={option.label || key} />
      ) : null}
    </span>
  );
}

function TextEditor({ spec, value, onChange, path, ctx, errors, disabled, label }) {
  const listId = useId();
  const [names, setNames] = useState([]);
  const timer = useRef(null);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const suggest = (text) => {
    if (!spec.suggest) return;
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => {
      ctx.suggest(spec.suggest, text).then(setNames);
    }, 150);
  };
  const text = value === null || value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
  return (
    <>
      <input type="text" data-sb-path={path} value={text} maxLength={spec.max_length} disabled={disabled}
        list={spec.suggest ? listId : undefined} aria-label={label} placeholder={spec.placeholder || label}
        className={invalidAt(errors, path) ? "sb-invalid" : undefined} autoComplete="off"
        onFocus={(e) => suggest(e.target.value)}
        onChange={(e) => { onChange(e.target.value); suggest(e.target.value); }} />
      {spec.suggest ? (
        <datalist id={listId} data-sb-suggestions={spec.suggest}>
          {names.map((name) => <option key={name} value={name} />)}
        </datalist>
      ) : null}
    </>
  );
}

function IntegerEditor({ spec, value, onChange, path, errors, disabled, label }) {
  const text = value === null || value === undefined ? "" : String(value);
  return (
    <input type="number" step="1" min={spec.min} max={spec.max} data-sb-path={path} value={text} disabled={disabled}
      aria-label={label} className={`sb-number${invalidAt(errors, path) ? " sb-invalid" : ""}`}
      onChange={(e) => {
        const raw = e.target.value;
        const number = Number(raw);
        onChange(raw !== "" && Number.isInteger(number) ? number : raw);
      }} />
  );
}

function BooleanEditor({ value, onChange, path, errors, disabled, label }) {
  return (
    <select data-sb-path={path} value={value === false ? "false" : value === true ? "true" : ""} disabled={disabled}
      aria-label={label} className={invalidAt(errors, path) ? "sb-invalid" : undefined}
      onChange={(e) => onChange(e.target.value === "true")}>
      {value !== true && value !== false ? <option value="">— choose —</option> : null}
      <option value="true">yes</option>
      <option value="false">no</option>
    </select>
  );
}

function ChoiceEditor({ spec, value, onChange, path, errors, disabled, label }) {
  // Options carry their value's text (values are unique by text); the value keeps its type.
  const choices = spec.choices || [];
  const empty = value === null || value === undefined || value === "";
  const known = !empty && choices.some((c) => String(c.value) === String(value));
  return (
    <select data-sb-path={path} value={empty ? "" : String(value)} disabled={disabled}
      aria-label={label} className={invalidAt(errors, path) ? "sb-invalid" : undefined}
      onChange={(e) => {
        const chosen = choices.find((c) => String(c.value) === e.target.value);
        if (chosen) onChange(chosen.value);
      }}>
      {empty ? <option value="">— choose —</option> : null}
      {!empty && !known ? <option value={String(value)}>{`${String(value)} (not found)`}</option> : null}
      {choices.map((c) => <option key={String(c.value)} value={String(c.value)}>{c.label}</option>)}
    </select>
  );
}

function ListEditor({ spec, value, onChange, path, ctx, errors, disabled, label }) {
  const items = Array.isArray(value) ? value : [];
  const max = spec.max || Infinity;
  return (
    <span className="sb-list">
      {items.map((item, i) => (
        <span className="sb-list-item" key={i}>
          <SpecEditor spec={spec.item} value={item} path={join(path, i)} ctx={ctx} errors={errors} disabled={disabled} label={label}
            onChange={(v) => onChange(items.map((old, j) => (j === i ? v : old)))} />
          {disabled ? null : (
            <button type="button" className="sb-remove" title="Remove" data-sb-remove={join(path, i)}
              onClick={() => onChange(items.filter((_, j) => j !== i))}>×</button>
          )}
        </span>
      ))}
      {!disabled && items.length < max ? (
        <button type="button" className="sb-add" data-sb-add={path}
          onClick={() => onChange([...items, spec.item_default !== undefined ? clone(spec.item_default) : defaultFor(spec.item)])}>
          + {spec.add_label || "Add"}
        </button>
      ) : null}
    </span>
  );
}

const splitList = (text) => text.split(",").map((part) => part.trim()).filter((part) => part !== "");

function ListText({ value, onChange, path, errors, disabled, label }) {
  const shown = Array.isArray(value) ? value.join(", ") : value === null || value === undefined ? "" : String(value);
  const [text, setText] = useState(shown);
  useEffect(() => {
    if (JSON.stringify(splitList(text)) !== JSON.stringify(Array.isArray(value) ? value.map(String) : [])) setText(shown);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [value]);
  return (
    <input type="text" data-sb-path={path} value={text} disabled={disabled} aria-label={label} placeholder="a, b, c"
      className={invalidAt(errors, path) ? "sb-invalid" : undefined}
      onChange={(e) => { setText(e.target.value); onChange(splitList(e.target.value)); }} />
  );
}

function FilterValueEditor(props) {
  const { spec, siblings } = props;
  const operator = siblings ? siblings.operator : undefined;
  if ((spec.list || []).includes(operator)) return <ListText {...props} />;
  if ((spec.integer || []).includes(operator)) return <IntegerEditor {...props} spec={{ min: 0 }} />;
  return <TextEditor {...props} spec={{ type: "text" }} />;
}

function DateRangeEditor({ value, onChange, path, errors, disabled }) {
  const pair = Array.isArray(value) ? value : ["", ""];
  const set = (i, v) => onChange(pair.map((old, j) => (j === i ? v : old)));
  return (
    <span className="sb-range">
      {[0, 1].map((i) => (
        <input key={i} type="text" data-sb-path={join(path, i)} value={pair[i] === undefined ? "" : String(pair[i])}
          disabled={disabled} placeholder={i === 0 ? "2026-05-01" : "2026-05-31T23:59:59Z"} aria-label={i === 0 ? "from" : "to"}
          className={invalidAt(errors, join(path, i)) || invalidAt(errors, path) ? "sb-invalid" : undefined}
          onChange={(e) => set(i, e.target.value)} />
      ))}
    </span>
  );
}

function JsonEditor({ value, onChange, path, errors, disabled, label }) {
  const [text, setText] = useState(() => JSON.stringify(value === undefined ? {} : value, null, 2));
  const [problem, setProblem] = useState("");
  return (
    <span className="sb-json">
      <textarea data-sb-path={path} value={text} disabled={disabled} rows={3} aria-label={label}
        className={problem || invalidAt(errors, path) ? "sb-invalid" : undefined}
        onChange={(e) => {
          setText(e.target.value);
          try {
            onChange(JSON.parse(e.target.value));
            setProblem("");
          } catch (error) {
            setProblem(`Not JSON yet: ${error.message}`);
          }
        }} />
      {problem ? <span className="sb-problem">{problem}</span> : null}
    </span>
  );
}

const EDITORS = {
  object: ObjectEditor, one_of: OneOfEditor, text: TextEditor, integer: IntegerEditor, boolean: BooleanEditor,
  choice: ChoiceEditor, list: ListEditor, filter_value: FilterValueEditor, date_range: DateRangeEditor, json: JsonEditor,
};

export function SpecEditor(props) {
  const Editor = EDITORS[props.spec && props.spec.type] || JsonEditor;
  return <Editor {...props} errors={props.errors || []} />;
}
