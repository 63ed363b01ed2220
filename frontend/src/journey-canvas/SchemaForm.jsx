/*
 * A form generated from the definition's JSON Schema: one field per property of the schema given
 * (outcomes excepted: they are the canvas's edges), chosen by the property's schema — a select for
 * an enum, a text box for a string (a larger one for a Liquid template), a number, a checkbox, a unit
 * and a number for a duration, check boxes for a list of choices, a line per item for a list of
 * words, a sub-form per item for a list of objects, a fieldset for a closed object, the segment
 * builder for a condition tree (conditions.jsx, with a JSON view), and a JSON box for anything else
 * (attributes, headers...). Errors from the server are shown on the
 * field their path names.
 */
import React, { useEffect, useId, useRef, useState } from "react";
import { ConditionField, isConditionPart } from "./conditions.jsx";
import { conditionalParts, isNext, isUnitPicker, itemSchemas, singular, unwrap } from "./schema.js";

export function humanize(name) {
  const text = String(name).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function pathKey(path) {
  return path.join(".");
}

/** Errors whose path is `path` or under it. */
function errorsAt(errors, path) {
  const key = pathKey(path);
  return errors.filter((error) => error.path === key || error.path.startsWith(`${key}.`));
}

function ErrorList({ errors }) {
  if (!errors.length) return null;
  return (
    <ul className="jc-field-errors">
      {errors.map((error, index) => (
        <li key={index} className={error.kind === "activation" ? "jc-warning" : "jc-error"}>
          {error.path && <code>{error.path}</code>} {error.message}
        </li>
      ))}
    </ul>
  );
}

function isRowId(S, schema) {
  return (
    Array.isArray(schema.anyOf) &&
    schema.anyOf.some((part) => S.resolve(part).type === "integer") &&
    schema.anyOf.some((part) => S.resolve(part).type === "string" && S.resolve(part).pattern)
  );
}

function isTextish(S, schema) {
  return (
    Array.isArray(schema.anyOf) &&
    schema.anyOf.every((part) => ["integer", "string"].includes(S.resolve(part).type))
  );
}

function kindOf(S, schema) {
  if ("const" in schema) return "const";
  if (schema.enum) return "enum";
  if (isRowId(S, schema)) return "id";
  if (isTextish(S, schema)) return "text";
  if (schema.type === "string") return "text";
  if (schema.type === "integer" || schema.type === "number") return "number";
  if (schema.type === "boolean") return "bool";
  if (schema.type === "array") {
    const items = itemSchemas(S, schema);
    if (items.length === 1 && items[0].enum) return "choices";
    if (items.length === 1 && items[0].type === "string") return "lines";
    if (items.every((item) => item.type === "object" && item.additionalProperties === false)) return "list";
    return "json";
  }
  if (schema.type === "object") {
    if (isUnitPicker(S, schema)) return "duration";
    // One of several keys (a condition tree: and, or, not or a condition kind) is typed as JSON.
    if (schema.maxProperties === 1) return "json";
    if (schema.additionalProperties === false && schema.properties) return "object";
  }
  return "json";
}

function isLong(schema) {
  return (schema.maxLength || 0) > 255 || /Liquid/.test(schema.description || "");
}

/** Sets `name` of `value` (an object) to `next`; undefined removes it. */
function withProperty(value, name, next) {
  const out = { ...(value || {}) };
  if (next === undefined) delete out[name];
  else out[name] = next;
  return out;
}

function Help({ schema }) {
  return schema.description ? <p className="jc-help">{schema.description}</p> : null;
}

function TextInput({ id, value, onChange, long, disabled, placeholder }) {
  const props = {
    id, value: value ?? "", disabled, placeholder,
    onChange: (event) => onChange(event.target.value === "" ? undefined : event.target.value),
  };
  return long ? <textarea rows={4} {...props} /> : <input type="text" {...props} />;
}

/** A JSON value typed as text: handed on once it parses; empty is no value. */
function JsonInput({ id, value, onChange, disabled, rows = 4, placeholder }) {
  const shown = value === undefined || value === null ? "" : JSON.stringify(value, null, 2);
  const [text, setText] = useState(shown);
  const [problem, setProblem] = useState(null);
  const last = useRef(value);
  useEffect(() => {
    // Changed from outside (undo, another field): show it.
    if (JSON.stringify(last.current) !== JSON.stringify(value)) {
      last.current = value;
      setText(shown);
      setProblem(null);
    }
  }, [shown]); // eslint-disable-line react-hooks/exhaustive-deps
  const change = (event) => {
    const typed = event.target.value;
    setText(typed);
    if (!typed.trim()) {
      setProblem(null);
      last.current = undefined;
      onChange(undefined);
      return;
    }
    try {
      const parsed = JSON.parse(typed);
      setProblem(null);
      last.current = parsed;
      onChange(parsed);
    } catch (error) {
      setProblem("Not JSON yet: the step keeps its last valid value.");
    }
  };
  return (
    <>
      <textarea id={id} className="jc-json" rows={rows} value={text} onChange={change} disabled={disabled}
        placeholder={placeholder} spellCheck={false} />
      {problem && <p className="jc-json-problem">{problem}</p>}
    </>
  );
}

function Duration({ S, schema, value, onChange, disabled, id }) {
  const units = Object.keys(schema.properties);
  const current = value && typeof value === "object" ? Object.keys(value)[0] : undefined;
  const unit = units.includes(current) ? current : units[0];
  const amount = value && typeof value === "object" ? value[current] : undefined;
  const max = S.resolve(schema.properties[unit]).maximum;
  return (
    <span className="jc-duration">
      <input id={id} type="number" min={1} max={max} value={amount ?? ""} disabled={disabled} aria-label="amount"
        onChange={(event) => onChange(event.target.value === "" ? undefined : { [unit]: Number(event.target.value) })} />
      <select value={unit} disabled={disabled} aria-label="unit"
        onChange={(event) => onChange({ [event.target.value]: amount ?? 1 })}>
        {units.map((name) => <option key={name} value={name}>{name}</option>)}
      </select>
    </span>
  );
}

function Choices({ S, schema, value, onChange, disabled }) {
  const [items] = itemSchemas(S, schema);
  const chosen = new Set(Array.isArray(value) ? value : []);
  return (
    <span className="jc-choices">
      {items.enum.map((option) => (
        <label key={option}>
          <input type="checkbox" checked={chosen.has(option)} disabled={disabled} onChange={(event) => {
            const next = items.enum.filter((name) => (name === option ? event.target.checked : chosen.has(name)));
            onChange(next.length ? next : undefined);
          }} /> {option}
        </label>
      ))}
    </span>
  );
}

function Lines({ id, value, onChange, disabled }) {
  const [text, setText] = useState((Array.isArray(value) ? value : []).join("\n"));
  const last = useRef(value);
  useEffect(() => {
    if (JSON.stringify(last.current) !== JSON.stringify(value)) {
      last.current = value;
      setText((Array.isArray(value) ? value : []).join("\n"));
    }
  }, [value]);
  return (
    <textarea id={id} rows={3} value={text} disabled={disabled} placeholder="One per line" onChange={(event) => {
      setText(event.target.value);
      const lines = event.target.value.split("\n").map((line) => line.trim()).filter(Boolean);
      last.current = lines.length ? lines : undefined;
      onChange(last.current);
    }} />
  );
}

function ListField({ S, schema, value, onChange, path, errors, disabled, name }) {
  const items = Array.isArray(value) ? value : [];
  const options = itemSchemas(S, schema);
  const [kind, setKind] = useState(0);
  const max = schema.maxItems ?? Infinity;
  const min = schema.minItems ?? 0;
  const itemSchemaFor = (item) =>
    options.find((option) => (option.required || []).every((key) => item && key in item)) || options[0];
  return (
    <div className="jc-list">
      {items.map((item, index) => (
        <fieldset key={index} className="jc-list-item">
          <legend>{humanize(singular(name))} {index + 1}</legend>
          <ObjectFields S={S} schema={itemSchemaFor(item)} value={item} path={[...path, index]} errors={errors}
            disabled={disabled} onChange={(next) => onChange(items.map((old, i) => (i === index ? next : old)))} />
          {!disabled && items.length > min && (
            <button type="button" className="jc-small" onClick={() => {
              const next = items.filter((_, i) => i !== index);
              onChange(next.length ? next : undefined);
            }}>Remove</button>
          )}
        </fieldset>
      ))}
      {!disabled && items.length < max && (
        <span className="jc-list-add">
          {options.length > 1 && (
            <select value={kind} aria-label="kind" onChange={(event) => setKind(Number(event.target.value))}>
              {options.map((option, i) => (
                <option key={i} value={i}>{(option.required || [])[0] || `kind ${i + 1}`}</option>
              ))}
            </select>
          )}
          <button type="button" className="jc-small" onClick={() => {
            const option = options[kind] || options[0];
            const fresh = {};
            for (const key of option.required || []) {
              const part = S.resolve(option.properties?.[key]);
              if (part.type === "integer") fresh[key] = part.default ?? part.minimum ?? 1;
              else if (part.type === "array") fresh[key] = [];
              else if (part.type === "string") fresh[key] = "";
              else fresh[key] = null;
            }
            if (option.properties?.next && isNext(option.properties.next)) fresh.next = null;
            onChange([...items, fresh]);
          }}>Add {singular(name).replace(/_/g, " ")}</button>
        </span>
      )}
    </div>
  );
}

/** An object open to any fields (a message's content): the fields the schema requires for this
 * step, each as text, and the others as JSON. */
function OpenObject({ S, value, onChange, path, errors, disabled, known, id }) {
  const current = value && typeof value === "object" && !Array.isArray(value) ? value : {};
  const rest = Object.fromEntries(Object.entries(current).filter(([key]) => !known.includes(key)));
  return (
    <div className="jc-open-object">
      {known.map((key) => (
        <div key={key} className={`jc-field${errorsAt(errors, [...path, key]).length ? " jc-has-error" : ""}`}
          data-jc-field={pathKey([...path, key])}>
          <label htmlFor={`${id}-${key}`}>{humanize(key)} <span className="jc-required">*</span></label>
          <TextInput id={`${id}-${key}`} value={typeof current[key] === "string" ? current[key] : ""} long={key !== "subject"}
            disabled={disabled} onChange={(text) => onChange(withProperty(current, key, text))} />
          <ErrorList errors={errorsAt(errors, [...path, key])} />
        </div>
      ))}
      <div className="jc-field" data-jc-field={pathKey([...path, "*"])}>
        <label htmlFor={`${id}-rest`}>{known.length ? "Other fields (JSON)" : "Fields (JSON)"}</label>
        <JsonInput id={`${id}-rest`} value={Object.keys(rest).length ? rest : undefined} disabled={disabled} rows={3}
          placeholder='{"from": "news@example.com"}'
          onChange={(next) => {
            const kept = Object.fromEntries(known.filter((key) => key in current).map((key) => [key, current[key]]));
            const merged = { ...kept, ...(next && typeof next === "object" && !Array.isArray(next) ? next : {}) };
            onChange(Object.keys(merged).length ? merged : undefined);
          }} />
      </div>
    </div>
  );
}

export function Field({ S, name, part, value, onChange, path, errors, disabled, required, extra = [] }) {
  const id = useId();
  const { schema: base } = unwrap(S, part);
  const schema = base;
  // A condition tree (only_if, a branch's condition...): the segment builder, with a JSON view.
  const kind = isConditionPart(part) ? "condition" : kindOf(S, schema);
  if (kind === "const") return null;
  const own = errors.filter((error) => error.path === pathKey(path));
  const inner = errorsAt(errors, path).filter((error) => !own.includes(error));
  const label = (
    <label htmlFor={id}>
      {humanize(name)}
      {required && <span className="jc-required"> *</span>}
    </label>
  );
  let control;
  switch (kind) {
    case "enum":
      control = (
        <select id={id} value={value ?? ""} disabled={disabled}
          onChange={(event) => onChange(event.target.value === "" ? undefined : schema.enum[Number(event.target.selectedIndex) - 1])}>
          <option value="">{schema.default !== undefined ? `— (${schema.default})` : "—"}</option>
          {schema.enum.map((option) => <option key={String(option)} value={option ?? ""}>{String(option)}</option>)}
        </select>
      );
      break;
    case "id":
      control = (
        <input id={id} type="number" min={1} value={value ?? ""} disabled={disabled}
          onChange={(event) => onChange(event.target.value === "" ? undefined : Number(event.target.value))} />
      );
      break;
    case "text":
      control = <TextInput id={id} value={value} onChange={onChange} long={isLong(schema)} disabled={disabled} />;
      break;
    case "number":
      control = (
        <input id={id} type="number" min={schema.minimum} max={schema.maximum} step={schema.type === "integer" ? 1 : "any"}
          value={value ?? ""} disabled={disabled} placeholder={schema.default !== undefined ? String(schema.default) : ""}
          onChange={(event) => onChange(event.target.value === "" ? undefined : Number(event.target.value))} />
      );
      break;
    case "bool":
      control = (
        <input id={id} type="checkbox" checked={value === true} disabled={disabled}
          onChange={(event) => onChange(event.target.checked ? true : schema.default === true ? false : undefined)} />
      );
      break;
    case "duration":
      control = <Duration S={S} schema={schema} value={value} onChange={onChange} disabled={disabled} id={id} />;
      break;
    case "choices":
      control = <Choices S={S} schema={schema} value={value} onChange={onChange} disabled={disabled} />;
      break;
    case "lines":
      control = <Lines id={id} value={value} onChange={onChange} disabled={disabled} />;
      break;
    case "list":
      control = <ListField S={S} schema={schema} value={value} onChange={onChange} path={path} errors={errors}
        disabled={disabled} name={name} />;
      break;
    case "object":
      control = (
        <fieldset className="jc-object">
          <ObjectFields S={S} schema={schema} value={value} onChange={(next) => onChange(next)} path={path}
            errors={errors} disabled={disabled} />
        </fieldset>
      );
      break;
    case "condition":
      control = <ConditionField S={S} id={id} value={value} onChange={onChange} pathKey={pathKey(path)} errors={errors}
        disabled={disabled} JsonBox={JsonInput} />;
      break;
    default: {
      const known = extra.flatMap((part2) => part2.required || []);
      if (schema.type === "object" && !schema.properties && known.length) {
        control = <OpenObject S={S} value={value} onChange={onChange} path={path} errors={errors} disabled={disabled}
          known={[...new Set(known)]} id={id} />;
      } else {
        control = <JsonInput id={id} value={value} onChange={onChange} disabled={disabled} />;
      }
    }
  }
  const nested = ["list", "object"].includes(kind) || (kind === "json" && extra.length);
  // The builder shows a condition's errors on its nodes (without it, they are listed here).
  const shown = kind === "condition" && S.conditions?.schema ? [] : nested ? own : [...own, ...inner];
  return (
    <div className={`jc-field jc-kind-${kind}${own.length ? " jc-has-error" : ""}`} data-jc-field={pathKey(path)}>
      {kind === "bool" ? <span className="jc-bool">{control} {label}</span> : <>{label}{control}</>}
      <Help schema={schema} />
      <ErrorList errors={shown} />
    </div>
  );
}

/** The fields of a closed object schema (outcomes and the `type` constant left out). */
export function ObjectFields({ S, schema, value, onChange, path, errors, disabled, skip = () => false }) {
  const current = value && typeof value === "object" ? value : {};
  const extras = conditionalParts(S, schema, current);
  const required = new Set(schema.required || []);
  return (
    <>
      {Object.entries(schema.properties || {}).map(([name, part]) => {
        if (isNext(part) || skip(name)) return null;
        const resolved = S.resolve(part);
        if (resolved.type === "null") return null; // a branching step's `next`
        return (
          <Field key={name} S={S} name={name} part={part} value={current[name]} path={[...path, name]} errors={errors}
            disabled={disabled} required={required.has(name)} extra={extras[name] || []}
            onChange={(next) => onChange(withProperty(current, name, next))} />
        );
      })}
    </>
  );
}
