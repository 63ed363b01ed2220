/*
 * Reading the campaign definition's JSON Schema (campaigns/journeys/schema.py, the document
 * GET /v1/campaigns/schema serves). Nothing about the step kinds is written here: their types,
 * fields, outcomes and required fields all come from the schema the page carries.
 */

const STEP_KEY_REF = "#/$defs/step_key";

export function makeSchema(doc) {
  const defs = doc.$defs || {};
  const resolve = (schema) => {
    let out = schema;
    for (let i = 0; out && out.$ref && i < 20; i += 1) out = defs[out.$ref.replace("#/$defs/", "")];
    return out || {};
  };
  return { doc, defs, resolve, stepKeyPattern: new RegExp(defs.step_key?.pattern || "^[A-Za-z0-9_-]{1,64}$") };
}

/** Whether a property names the following step (the schema's NEXT: a step key or null). */
export function isNext(schema) {
  return Array.isArray(schema?.anyOf) && schema.anyOf.some((part) => part.$ref === STEP_KEY_REF);
}

/** `anyOf [X, null]` → X, nullable (a description on the wrapper wins). */
export function unwrap(S, schema) {
  const resolved = S.resolve(schema);
  if (Array.isArray(resolved.anyOf)) {
    const rest = resolved.anyOf.filter((part) => S.resolve(part).type !== "null");
    if (rest.length === 1 && rest.length < resolved.anyOf.length) {
      const inner = S.resolve(rest[0]);
      return { schema: { ...inner, description: resolved.description || inner.description }, nullable: true };
    }
  }
  return { schema: resolved, nullable: false };
}

export function stepSchema(S, type) {
  return S.defs[`step_${type}`] || null;
}

export function constOf(S, ref) {
  return S.resolve(ref).properties?.type?.const;
}

/** The step types, in the schema's order, with their descriptions. */
export function stepTypes(S) {
  return (S.defs.step?.oneOf || []).map((ref) => {
    const schema = S.resolve(ref);
    return { type: schema.properties.type.const, description: schema.description || "" };
  });
}

/** The trigger types a campaign of this type may have (the document's top-level if/then/else). */
export function triggerTypes(S, campaignType) {
  const rule = (S.doc.allOf || []).find((part) => part.if?.properties?.type?.const === "broadcast");
  let refs = S.defs.trigger?.oneOf || [];
  if (rule) {
    const branch = campaignType === "broadcast" ? rule.then : rule.else;
    const trigger = branch?.properties?.trigger;
    const listed = trigger?.oneOf || trigger?.anyOf;
    if (listed) refs = listed.filter((ref) => ref.$ref);
  }
  return refs.map((ref) => {
    const schema = S.resolve(ref);
    return { type: schema.properties.type.const, description: schema.description || "" };
  });
}

export function triggerSchema(S, type) {
  return S.defs[`trigger_${type}`] || null;
}

/** Does `value` satisfy the simple `if` parts the schema uses (properties' const/enum, required)? */
function matches(S, condition, value) {
  if (!condition || typeof value !== "object" || value === null) return false;
  for (const name of condition.required || []) if (!(name in value)) return false;
  for (const [name, part] of Object.entries(condition.properties || {})) {
    if (!(name in value)) continue;
    const want = S.resolve(part);
    if ("const" in want && value[name] !== want.const) return false;
    if (want.enum && !want.enum.includes(value[name])) return false;
    if (want.type === "object" && (typeof value[name] !== "object" || value[name] === null)) return false;
  }
  return true;
}

/**
 * What the schema's conditional parts (`allOf: [{if, then}]`) add to each property for this value:
 * e.g. an email send step's content must have `subject` and `body`. Returns {property: [schemas]}.
 */
export function conditionalParts(S, schema, value) {
  const out = {};
  const parts = [...(schema.allOf || []), ...(schema.if ? [schema] : [])];
  for (const part of parts) {
    if (!part.if || !part.then || !matches(S, part.if, value)) continue;
    for (const [name, extra] of Object.entries(part.then.properties || {})) (out[name] ||= []).push(extra);
  }
  return out;
}

export function singular(name) {
  if (name.endsWith("ches") || name.endsWith("shes")) return name.slice(0, -2);
  if (name.endsWith("s")) return name.slice(0, -1);
  return name;
}

function itemSchemas(S, schema) {
  const items = S.resolve(schema.items || {});
  return items.anyOf ? items.anyOf.map((part) => S.resolve(part)) : [items];
}

function itemLabel(name, index, item) {
  const base = `${singular(name)} ${index + 1}`;
  if (!item || typeof item !== "object") return base;
  if (Array.isArray(item.keywords) && item.keywords.length) return `${base}: ${item.keywords.join(", ")}`;
  if (typeof item.pattern === "string" && item.pattern) return `${base}: /${item.pattern}/`;
  if (typeof item.weight === "number") return `${base} (${item.weight})`;
  return base;
}

/**
 * The outcomes of a step, in the schema's property order: {handle, label, path}. A property whose
 * schema is NEXT is one outcome (next, yes/no, else, matched/timeout); an array whose items have a
 * NEXT `next` gives one per item (split branches, cohorts, reply branches).
 */
export function outcomesOf(S, step) {
  const schema = stepSchema(S, step?.type);
  if (!schema) return [];
  const out = [];
  for (const [name, part] of Object.entries(schema.properties || {})) {
    if (isNext(part)) {
      // An exit step's `next` is only for the people its only_if skips.
      if (name === "next" && step.type === "exit" && !step.only_if) continue;
      out.push({ handle: name, label: name === "next" ? "" : name, path: [name] });
      continue;
    }
    const resolved = S.resolve(part);
    if (resolved.type !== "array") continue;
    if (!itemSchemas(S, resolved).some((item) => isNext(item.properties?.next))) continue;
    (Array.isArray(step[name]) ? step[name] : []).forEach((item, index) => {
      out.push({ handle: `${name}.${index}.next`, label: itemLabel(name, index, item), path: [name, index, "next"] });
    });
  }
  return out;
}

/** Property names that are outcomes (drawn as edges, not form fields). */
export function outcomeProperties(S, schema) {
  return new Set(Object.entries(schema.properties || {}).filter(([, part]) => isNext(part)).map(([name]) => name));
}

/** A new step of this type: its required fields with the first value their schema allows. */
export function newStep(S, type) {
  const schema = stepSchema(S, type);
  const step = { type };
  for (const name of schema?.required || []) {
    if (name === "type") continue;
    const value = initialValue(S, schema.properties?.[name]);
    if (value !== undefined) step[name] = value;
  }
  return step;
}

function initialValue(S, part) {
  const { schema } = unwrap(S, part);
  if (schema.enum) return schema.enum[0];
  if (schema.type === "object" && isUnitPicker(S, schema)) {
    const [unit] = Object.keys(schema.properties);
    return { [unit]: 1 };
  }
  if (schema.type === "array" && schema.minItems) {
    const [item] = itemSchemas(S, schema);
    if (item.type === "object" && item.additionalProperties === false) {
      return Array.from({ length: schema.minItems }, () => {
        const out = {};
        for (const name of item.required || []) {
          const value = initialValue(S, item.properties?.[name]);
          out[name] = value === undefined ? null : value;
        }
        return out;
      });
    }
  }
  if (schema.type === "integer" || schema.type === "number") return schema.default ?? schema.minimum ?? 1;
  return undefined;
}

/** An object of exactly one of several whole-number properties (a duration: {"days": 2}). */
export function isUnitPicker(S, schema) {
  const props = Object.values(schema.properties || {});
  return (
    schema.type === "object" && schema.maxProperties === 1 && schema.additionalProperties === false &&
    props.length > 1 && props.every((part) => S.resolve(part).type === "integer")
  );
}

export { itemSchemas };
