/*
 * The segment condition tree (docs/segments.md) <-> react-querybuilder's query.
 *
 * A group {combinator: "and"|"or", not, rules} is {"and"|"or": [...]}, or, negated,
 * {"not": child} (one child) / {"not": {"and"|"or": [...]}}; a rule {field: kind, value: body} is
 * the leaf {kind: body}. The root group with a single rule is that leaf alone; with none, {}.
 * toConditions also answers the path of every node from `conditions` (as the server names them
 * in its errors), so an error can be shown on the node it concerns.
 */

export const OPERATOR = "is"; // rules carry their whole body as the value; one operator for all

let counter = 0;
const newId = () => `sb-${++counter}`;

export class ConvertError extends Error {
  constructor(path, message) {
    super(`${path}: ${message}`);
    this.path = path;
    this.detail = message;
  }
}

export const isPlainObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
export const isGroup = (node) => isPlainObject(node) && Array.isArray(node.rules);

export function emptyQuery() {
  return { id: newId(), combinator: "and", not: false, rules: [] };
}

function fromNode(node, path) {
  if (!isPlainObject(node) || Object.keys(node).length !== 1) {
    throw new ConvertError(path, "each condition is an object with exactly one key (and, or, not or a kind)");
  }
  const [key, body] = Object.entries(node)[0];
  if (key === "and" || key === "or") {
    if (!Array.isArray(body)) throw new ConvertError(`${path}.${key}`, `\`${key}\` takes a list of conditions`);
    return { id: newId(), combinator: key, not: false, rules: body.map((child, i) => fromNode(child, `${path}.${key}.${i}`)) };
  }
  if (key === "not") {
    const inner = fromNode(body, `${path}.not`);
    if (isGroup(inner) && !inner.not) return { ...inner, not: true };
    return { id: newId(), combinator: "and", not: true, rules: [inner] };
  }
  return { id: newId(), field: key, operator: OPERATOR, value: body };
}

/** The builder's query for a condition tree ({} or null: an empty group). Throws ConvertError. */
export function toQuery(tree) {
  if (tree === null || tree === undefined || (isPlainObject(tree) && Object.keys(tree).length === 0)) {
    return emptyQuery();
  }
  const node = fromNode(tree, "conditions");
  return isGroup(node) ? node : { id: newId(), combinator: "and", not: false, rules: [node] };
}

/** Kind names used by the tree's leaves (to offer kinds the schema does not know). */
export function leafKinds(query, out = new Set()) {
  for (const rule of query.rules || []) {
    if (isGroup(rule)) leafKinds(rule, out);
    else if (rule && typeof rule === "object") out.add(rule.field);
  }
  return out;
}

/**
 * The condition tree of a query, and `nodes`: [{id, path, rule}] for every group and rule.
 */
export function toConditions(query) {
  const nodes = [];
  const leaf = (rule, path) => {
    nodes.push({ id: rule.id, path, rule: true });
    return { [rule.field]: rule.value === undefined ? {} : rule.value };
  };
  const node = (item, path) => (isGroup(item) ? group(item, path) : leaf(item, path));
  const group = (g, path) => {
    nodes.push({ id: g.id, path, rule: false });
    const children = g.rules.filter((rule) => typeof rule !== "string");
    if (g.not) {
      if (children.length === 1) return { not: node(children[0], `${path}.not`) };
      const base = `${path}.not.${g.combinator}`;
      return { not: { [g.combinator]: children.map((child, i) => node(child, `${base}.${i}`)) } };
    }
    return { [g.combinator]: children.map((child, i) => node(child, `${path}.${g.combinator}.${i}`)) };
  };
  const rules = query.rules.filter((rule) => typeof rule !== "string");
  let tree;
  if (!query.not && rules.length === 0) {
    nodes.push({ id: query.id, path: "conditions", rule: false });
    tree = {};
  } else if (!query.not && rules.length === 1 && !isGroup(rules[0])) {
    nodes.push({ id: query.id, path: "conditions", rule: false });
    tree = leaf(rules[0], "conditions");
  } else {
    tree = group(query, "conditions");
  }
  return { tree, nodes };
}

/**
 * Server errors [{path, message}] placed on nodes: {byNode: {id: [{sub, message}]}, other: [...]}.
 * An error goes to the node with the longest path it starts with (a rule before a group at the
 * same path); `sub` is the rest of its path inside the leaf's body (the kind name left out).
 */
export function placeErrors(errors, nodes) {
  const byNode = {};
  const other = [];
  for (const error of errors || []) {
    const path = error.path || "";
    let best = null;
    for (const candidate of nodes || []) {
      const fits = path === candidate.path || path.startsWith(`${candidate.path}.`);
      if (!fits) continue;
      if (!best || candidate.path.length > best.path.length || (candidate.path.length === best.path.length && candidate.rule)) {
        best = candidate;
      }
    }
    if (!best) {
      other.push({ sub: path, message: error.message });
      continue;
    }
    let sub = path.slice(best.path.length).replace(/^\./, "");
    if (best.rule) sub = sub.split(".").slice(1).join("."); // drop the kind's name
    (byNode[best.id] = byNode[best.id] || []).push({ sub, message: error.message });
  }
  return { byNode, other };
}
