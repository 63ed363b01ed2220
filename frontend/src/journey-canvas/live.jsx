/*
 * The canvas's live parts (docs/console-journeys.md): the figures on the nodes, polled while the
 * page is visible; the simulation panel (pick a person, an event, run the dry run, see the path);
 * the publish choice for a live campaign with the dry count of the runs it affects; the diff
 * between two versions. Each reads one of the canvas page's JSON endpoints (campaigns/admin_canvas.py).
 */
import React, { useEffect, useRef, useState } from "react";
import { getJson, postJson } from "./api.js";

// --- the figures ------------------------------------------------------------------------------------

/** The canvas's figures, read now and every `intervalMs` while the tab is visible (paused when it
 * is hidden, read again when it shows). Answers [{numbers, at, error}, refresh]. */
export function useNumbers(url, intervalMs, enabled) {
  const [state, setState] = useState({ numbers: null, at: null, error: "" });
  const [nudge, setNudge] = useState(0);
  useEffect(() => {
    if (!url || !enabled) return undefined;
    let timer = null;
    let stopped = false;
    let busy = false;
    let controller = null;
    const load = async () => {
      window.clearTimeout(timer);
      if (stopped || busy || document.hidden) return;
      busy = true;
      controller = new AbortController();
      try {
        const answer = await getJson(url, {}, { signal: controller.signal });
        if (stopped) return;
        if (answer.status === 200 && answer.data) {
          setState({ numbers: answer.data.numbers, at: new Date(), error: "" });
        } else {
          setState((current) => ({ ...current, error: `The figures could not be read (${answer.status}).` }));
        }
      } catch (error) {
        if (error.name === "AbortError") return;
        setState((current) => ({ ...current, error: "The figures could not be read." }));
      } finally {
        busy = false;
      }
      if (!stopped) timer = window.setTimeout(load, intervalMs);
    };
    const onVisibility = () => (document.hidden ? window.clearTimeout(timer) : load());
    document.addEventListener("visibilitychange", onVisibility);
    load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      if (controller) controller.abort();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [url, intervalMs, enabled, nudge]);
  return [state, () => setNudge((n) => n + 1)];
}

export function percent(rate) {
  if (rate === null || rate === undefined) return "–";
  const value = rate * 100;
  return `${value > 0 && value < 10 ? value.toFixed(1) : Math.round(value)}%`;
}

function N({ name, label, value, title, alarm = false }) {
  return (
    <span className={`jc-n jc-n-${name}${alarm && value > 0 ? " jc-n-alarm" : ""}`} data-jc-n={name} title={title}>
      {label} <b>{value}</b></span>
  );
}

/** A step's figures on its node: runs (waiting now, entered, completed, exited, failed), a send's
 * messages with rates, an A/B step's variants and winner. */
export function StepNumbers({ figures }) {
  if (!figures) return null;
  const m = figures.messages;
  return (
    <div className="jc-numbers" data-jc-numbers="">
      <div className="jc-n-row">
        <N name="waiting" label="wait" value={figures.waiting} title="Runs waiting at this step now" />
        <N name="entered" label="in" value={figures.entered} title="Runs that entered this step" />
        <N name="completed" label="done" value={figures.completed} title="Runs that got past it" />
        <N name="exited" label="exit" value={figures.exited} title="Runs that exited here" alarm />
        <N name="failed" label="fail" value={figures.failed} title="Runs whose step failed here" alarm />
      </div>
      {m && (
        <div className="jc-n-row">
          <N name="sent" label="sent" value={m.sent} title="Messages sent" />
          <N name="opened" label="open" value={percent(m.opened_rate)} title={`${m.opened} opened of ${m.sent} sent`} />
          <N name="clicked" label="click" value={percent(m.clicked_rate)} title={`${m.clicked} clicked of ${m.sent} sent`} />
          <N name="converted" label="conv" value={percent(m.converted_rate)}
            title={`${m.converted} converted of ${m.sent} sent`} />
        </div>
      )}
      {figures.ab && (
        <ul className="jc-n-variants" data-jc-ab={figures.ab.winner || ""}>
          {figures.ab.variants.map((variant) => (
            <li key={variant.key} data-jc-variant={variant.key}
              className={figures.ab.winner === variant.key ? "jc-winner" : ""}>
              <code>{variant.key}</code>{figures.ab.winner === variant.key ? " ★ winner" : ""}: {variant.sent} sent,
              {" "}{figures.ab.metric} {percent(variant.rate)}
              {variant.probability_to_be_best !== null && variant.probability_to_be_best !== undefined
                ? `, best ${percent(variant.probability_to_be_best)}` : ""}
            </li>
          ))}
          {figures.ab.holdout && <li>holdout: {figures.ab.holdout.runs} runs, {figures.ab.holdout.converted} converted</li>}
        </ul>
      )}
    </div>
  );
}

export function TotalNumbers({ totals }) {
  if (!totals) return null;
  return (
    <div className="jc-numbers" data-jc-numbers="">
      <div className="jc-n-row">
        <N name="entered" label="entered" value={totals.entered} title="Runs the campaign has had" />
        <N name="live" label="live" value={totals.live} title="Runs live now" />
        <N name="completed" label="done" value={totals.completed} title="Runs completed" />
        <N name="converted" label="conv" value={totals.converted} title="Runs converted (the goal)" />
      </div>
    </div>
  );
}

// --- the simulation ---------------------------------------------------------------------------------

/** "+2d 3h" from the run's start to `at` (Unix seconds). */
export function offset(at, start) {
  const seconds = Math.max(0, (at ?? start) - start);
  if (seconds < 60) return `+${seconds}s`;
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return `+${days ? `${days}d ` : ""}${hours || days ? `${hours}h ` : ""}${minutes}m`.trim();
}

export function utc(at) {
  return at ? new Date(at * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "";
}

function parseObject(text) {
  if (!text.trim()) return { value: null };
  try {
    const value = JSON.parse(text);
    if (!value || typeof value !== "object" || Array.isArray(value)) return { problem: "must be a JSON object" };
    return { value };
  } catch (error) {
    return { problem: "is not valid JSON" };
  }
}

function FieldError({ errors, names }) {
  const found = errors.filter((error) => names.includes(error.field));
  if (!found.length) return null;
  return found.map((error, index) => (
    <p key={index} className="jc-json-problem" data-jc-error={error.field}>{error.field}: {error.message}</p>
  ));
}

export function SimulatePanel({ data, dirty, result, onResult, onSelect, onClose }) {
  const sim = data.simulation || {};
  const [idType, setIdType] = useState("id");
  const [identifier, setIdentifier] = useState("");
  const [found, setFound] = useState({ people: [], more: false });
  const [eventName, setEventName] = useState(sim.event_name || "");
  const [eventData, setEventData] = useState("");
  const [triggerData, setTriggerData] = useState("");
  const [errors, setErrors] = useState([]);
  const [busy, setBusy] = useState(false);
  const picked = useRef("");

  // The people search (as the message editor's), a moment after typing.
  useEffect(() => {
    const term = identifier.trim();
    if (!data.urls.people || !term || term === picked.current) {
      setFound({ people: [], more: false });
      return undefined;
    }
    const controller = new AbortController();
    const timer = window.setTimeout(async () => {
      try {
        const answer = await getJson(data.urls.people, { q: term }, { signal: controller.signal });
        if (answer.status === 200 && answer.data) setFound(answer.data);
      } catch (error) {
        if (error.name !== "AbortError") setFound({ people: [], more: false });
      }
    }, 250);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
  }, [identifier, data.urls.people]);

  const choose = (person) => {
    const [type, value] = person.id ? ["id", person.id] : person.email ? ["email", person.email] : ["cio_id", person.cio_id];
    picked.current = value;
    setIdType(type);
    setIdentifier(value);
    setFound({ people: [], more: false });
  };

  const run = async (event) => {
    event.preventDefault();
    const body = { customer_id: identifier.trim(), id_type: idType };
    const local = [];
    if (sim.by_event) {
      const parsed = parseObject(eventData);
      if (parsed.problem) local.push({ field: "event.data", message: parsed.problem });
      body.event = { name: eventName.trim(), ...(parsed.value ? { data: parsed.value } : {}) };
    } else {
      const parsed = parseObject(triggerData);
      if (parsed.problem) local.push({ field: "data", message: parsed.problem });
      if (parsed.value) body.data = parsed.value;
    }
    if (local.length) {
      setErrors(local);
      return;
    }
    setBusy(true);
    try {
      const answer = await postJson(data.urls.simulate, body);
      if (answer.status === 200 && answer.data) {
        setErrors([]);
        onResult(answer.data.simulation);
      } else {
        setErrors(answer.data?.errors || [{ field: null, message: `The server answered ${answer.status}.` }]);
        onResult(null);
      }
    } catch (error) {
      setErrors([{ field: null, message: "The server could not be reached." }]);
    } finally {
      setBusy(false);
    }
  };

  const start = result?.steps?.[0]?.at;
  const general = errors.filter((error) => !["customer_id", "id_type", "event", "event.name", "event.data", "data"]
    .includes(error.field));
  return (
    <div className="jc-panel-body" data-jc-panel="@simulate">
      <h3>Simulate</h3>
      <p className="jc-help">A dry run of the <strong>saved</strong> workflow for one person, as if a run started now:
        nothing is written or sent.{dirty ? " Your unsaved changes are not in it: save first to simulate them." : ""}</p>
      <form className="jc-form" onSubmit={run}>
        <div className="jc-field">
          <label htmlFor="jc-sim-person">Person</label>
          <div className="jc-inline">
            <select id="jc-sim-id-type" aria-label="Person by" value={idType} onChange={(e) => setIdType(e.target.value)}>
              <option value="id">id</option>
              <option value="email">email</option>
              <option value="cio_id">cio_id</option>
            </select>
            <input id="jc-sim-person" type="text" autoComplete="off" value={identifier}
              placeholder={data.urls.people ? "search by id or email" : "the person's identifier"}
              onChange={(e) => {
                picked.current = "";
                setIdentifier(e.target.value);
              }} />
          </div>
          {found.people.length > 0 && (
            <ul className="jc-sim-people">
              {found.people.map((person) => (
                <li key={`${person.id}|${person.email}|${person.cio_id}`}>
                  <button type="button" className="jc-link jc-sim-pick" onClick={() => choose(person)}>
                    {person.id || "(no id)"}{person.email ? ` · ${person.email}` : ""}
                  </button>
                </li>
              ))}
              {found.more && <li className="jc-help">More match: type more.</li>}
            </ul>
          )}
          <FieldError errors={errors} names={["customer_id", "id_type"]} />
        </div>
        {sim.by_event ? (
          <>
            <div className="jc-field">
              <label htmlFor="jc-sim-event">Event</label>
              <input id="jc-sim-event" type="text" value={eventName} onChange={(e) => setEventName(e.target.value)} />
              <FieldError errors={errors} names={["event", "event.name"]} />
            </div>
            <div className="jc-field">
              <label htmlFor="jc-sim-event-data">Event data (JSON)</label>
              <textarea id="jc-sim-event-data" rows={3} value={eventData} placeholder='{"plan": "pro"}'
                onChange={(e) => setEventData(e.target.value)} />
              <FieldError errors={errors} names={["event.data"]} />
            </div>
          </>
        ) : (
          <div className="jc-field">
            <label htmlFor="jc-sim-data">Trigger data (JSON)</label>
            <textarea id="jc-sim-data" rows={3} value={triggerData} onChange={(e) => setTriggerData(e.target.value)} />
            <FieldError errors={errors} names={["data"]} />
          </div>
        )}
        {general.map((error, index) => <p key={index} className="jc-error">{error.message}</p>)}
        <div className="jc-inline">
          <button type="submit" id="jc-sim-run" className="jc-small jc-primary-small" disabled={busy || !identifier.trim()}>
            {busy ? "Running…" : "Run the simulation"}</button>
          <button type="button" className="jc-small" onClick={onClose}>Close</button>
        </div>
      </form>
      {result && (
        <div className="jc-sim-result" id="jc-sim-result" data-jc-entered={result.entered ? "1" : "0"}>
          {!result.entered ? (
            <p className="jc-warning">Would not enter: {result.reason}</p>
          ) : (
            <>
              <h4>Path ({result.steps.length} {result.steps.length === 1 ? "step" : "steps"})</h4>
              <ol className="jc-sim-steps">
                {result.steps.map((step) => (
                  <li key={step.seq} data-jc-sim-step={step.key}>
                    <button type="button" className="jc-link" onClick={() => onSelect(step.key)}>{step.key}</button>
                    {" "}<span className="jc-sim-outcome">{step.outcome}</span>{" "}
                    <span className="jc-help" title={utc(step.at)}>{offset(step.at, start)}</span>
                  </li>
                ))}
              </ol>
              <p className="jc-help" id="jc-sim-ended">Ends: {result.ended?.state}{result.ended?.reason ? ` (${result.ended.reason})` : ""}
                {result.ended?.at ? `, ${offset(result.ended.at, start)}` : ""}{result.truncated ? " — stopped early (limit)" : ""}</p>
              {result.messages.length > 0 && <h4>Messages</h4>}
              {result.messages.map((message) => (
                <div key={message.seq} className="jc-sim-message" data-jc-sim-message={message.step}>
                  <p><code>{message.step}</code> · {message.channel} to {message.to || "?"} · {message.status}
                    {message.reason ? ` (${message.reason})` : ""}{message.variant ? ` · variant ${message.variant}` : ""}</p>
                  {message.subject && <p className="jc-sim-subject"><strong>{message.subject}</strong></p>}
                  {message.text && <pre className="jc-sim-text">{message.text}</pre>}
                </div>
              ))}
            </>
          )}
          {result.assumed?.length > 0 && <p className="jc-help">Assumed: {result.assumed.join("; ")}</p>}
          <p><a href={data.urls.simulate_page}>The Simulate page</a> shows every detail and each email as it looks.</p>
        </div>
      )}
    </div>
  );
}

/** What the simulation says about each step ({key: [{seq, outcome, at, note}]}), the edges it took
 * ("source>target") and each step's messages. */
export function simulationPath(result, triggerId) {
  if (!result || !result.entered) return { byStep: {}, edges: new Set(), entered: false };
  const byStep = {};
  const start = result.steps[0]?.at;
  for (const step of result.steps) {
    (byStep[step.key] ||= { visits: [], messages: [] }).visits.push({ ...step, offset: offset(step.at, start) });
  }
  for (const message of result.messages) (byStep[message.step] ||= { visits: [], messages: [] }).messages.push(message);
  const edges = new Set();
  let previous = triggerId;
  for (const step of result.steps) {
    if (step.key !== previous) edges.add(`${previous}>${step.key}`);
    previous = step.key;
  }
  return { byStep, edges, entered: true };
}

export function SimulationOnNode({ visit }) {
  if (!visit) return null;
  const message = visit.messages[0];
  return (
    <div className="jc-sim-node" data-jc-sim={visit.visits.map((v) => v.outcome).join(",")}>
      {visit.visits.map((v) => (
        <div key={v.seq} className="jc-sim-visit" title={v.note || ""}>
          <span className="jc-sim-seq">{v.seq}</span> <b>{v.outcome}</b> <span className="jc-help">{v.offset}</span>
        </div>
      ))}
      {message && (
        <div className="jc-sim-msg" title={message.text}>
          {message.subject ? `“${message.subject}”` : message.text.slice(0, 60)} · {message.status}
        </div>
      )}
    </div>
  );
}

// --- publishing a live campaign ---------------------------------------------------------------------------

const EXIT = "__exit__";

/** The publish choice for a save of a live campaign with runs, with the dry count: the live runs per
 * step, what the new workflow does with each, and for "move" a target for each removed step. */
export function PublishDialog({ preview, errors, newSteps, busy, onConfirm, onCancel }) {
  const [runs, setRuns] = useState("");
  const [mapping, setMapping] = useState({});
  const removed = preview.steps.filter((row) => row.change === "removed" && row.runs > 0);
  const affectedRows = preview.steps.filter((row) => row.runs > 0);
  const moved = removed.reduce((sum, row) => sum + row.runs, 0);
  const retyped = preview.steps.filter((row) => row.type_changed).reduce((sum, row) => sum + row.runs, 0);
  const unmapped = runs === "move" ? removed.filter((row) => !mapping[row.key]) : [];
  let affected = "";
  if (runs === "stay") affected = `${preview.live_runs} live runs stay on their version; only new runs enter version ${preview.next_version}.`;
  else if (runs === "move") {
    const exiting = removed.filter((row) => mapping[row.key] === EXIT).reduce((sum, row) => sum + row.runs, 0);
    affected = `${preview.live_runs} live runs move to version ${preview.next_version}`
      + (moved ? `: ${moved - exiting} from removed steps go to the steps chosen${exiting ? `, ${exiting} exit` : ""}` : "")
      + (retyped ? `; ${retyped} at steps whose type changed run the new step at once` : "") + ".";
  } else if (runs === "exit") affected = `${preview.live_runs} live runs exit now.`;
  const confirm = () => {
    const publish = { runs };
    if (runs === "move") {
      publish.removed = Object.fromEntries(removed.map((row) => [row.key, mapping[row.key] === EXIT ? null : mapping[row.key]]));
    }
    onConfirm(publish);
  };
  const problem = (field) => errors.filter((error) => error.field === field || (field === "publish" && !error.field));
  return (
    <div className="jc-publish-dialog" id="jc-publish" role="dialog" aria-label="Publish">
      <h3>Publish version {preview.next_version}</h3>
      <p id="jc-publish-live"><strong>{preview.live_runs}</strong> {preview.live_runs === 1 ? "run is" : "runs are"} live in
        this campaign and the workflow changed: say what happens to them.</p>
      <table className="jc-publish-steps">
        <thead><tr><th>Step</th><th>Live runs</th><th>In the new version</th></tr></thead>
        <tbody>
          {affectedRows.map((row) => (
            <tr key={`${row.key}:${row.change}`} data-jc-publish-step={row.key}>
              <td><code>{row.key}</code></td><td>{row.runs}</td>
              <td>{row.change}{row.type_changed ? " (type changed: runs there run it at once under move)" : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {preview.added.length > 0 && <p className="jc-help">New steps: {preview.added.join(", ")}.</p>}
      <fieldset className="jc-publish-choice">
        <legend>Runs already in it</legend>
        {[["stay", "Stay on their version (finish on its workflow)"], ["move", "Move to the new version, by step key"],
          ["exit", "Exit now"]].map(([value, label]) => (
          <label key={value}><input type="radio" name="jc-publish-runs" value={value} id={`jc-publish-${value}`}
            checked={runs === value} onChange={() => setRuns(value)} /> {label}</label>
        ))}
        {problem("publish.runs").concat(problem("publish")).map((error, index) => (
          <p key={index} className="jc-json-problem">{error.message}</p>))}
      </fieldset>
      {runs === "move" && removed.length > 0 && (
        <div className="jc-publish-map">
          <h4>Removed steps with runs</h4>
          {removed.map((row) => (
            <div className="jc-field" key={row.key}>
              <label htmlFor={`jc-publish-map-${row.key}`}><code>{row.key}</code> ({row.runs} runs) go to</label>
              <select id={`jc-publish-map-${row.key}`} value={mapping[row.key] || ""}
                onChange={(event) => setMapping((current) => ({ ...current, [row.key]: event.target.value }))}>
                <option value="">— choose —</option>
                {newSteps.map((key) => <option key={key} value={key}>{key}</option>)}
                <option value={EXIT}>exit (the runs end)</option>
              </select>
              {problem(`publish.removed.${row.key}`).map((error, index) => (
                <p key={index} className="jc-json-problem">{error.message}</p>))}
            </div>
          ))}
        </div>
      )}
      {errors.filter((error) => error.field && !error.field.startsWith("publish")).map((error, index) => (
        <p key={index} className="jc-error"><code>{error.field}</code> {error.message}</p>))}
      {affected && <p id="jc-publish-affected" className="jc-publish-affected">{affected}</p>}
      <div className="jc-inline">
        <button type="button" id="jc-publish-confirm" className="jc-primary" disabled={busy || !runs || unmapped.length > 0}
          onClick={confirm}>Save and publish</button>
        <button type="button" id="jc-publish-cancel" onClick={onCancel}>Cancel</button>
      </div>
    </div>
  );
}

// --- the diff between two versions --------------------------------------------------------------------------

function short(value) {
  const text = value === undefined ? "null" : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

export function DiffPanel({ data, versions, current, diff, onDiff, onSelect, onClose }) {
  const numbers = versions.map((v) => v.number);
  const [version, setVersion] = useState(String(diff?.version ?? current));
  const [against, setAgainst] = useState(String(diff?.against ?? (current > 1 ? current - 1 : current)));
  const [errors, setErrors] = useState([]);
  useEffect(() => {
    if (diff) {
      setVersion(String(diff.version));
      setAgainst(String(diff.against));
    }
  }, [diff]);
  const compare = async () => {
    const answer = await getJson(data.urls.diff, { version, against });
    if (answer.status === 200 && answer.data) {
      setErrors([]);
      onDiff(answer.data.diff);
    } else {
      setErrors(answer.data?.errors || [{ field: null, message: `The server answered ${answer.status}.` }]);
    }
  };
  return (
    <div className="jc-panel-body" data-jc-panel="@diff">
      <h3>Compare versions</h3>
      {numbers.length < 2 ? (
        <p className="jc-help">This campaign has one version: a change saved once it has been live makes the next.</p>
      ) : (
        <div className="jc-inline">
          <label htmlFor="jc-diff-against">From</label>
          <select id="jc-diff-against" value={against} onChange={(e) => setAgainst(e.target.value)}>
            {numbers.map((n) => <option key={n} value={n}>version {n}</option>)}
          </select>
          <label htmlFor="jc-diff-version">to</label>
          <select id="jc-diff-version" value={version} onChange={(e) => setVersion(e.target.value)}>
            {numbers.map((n) => <option key={n} value={n}>version {n}</option>)}
          </select>
          <button type="button" id="jc-diff-run" className="jc-small" onClick={compare}>Compare</button>
        </div>
      )}
      {errors.map((error, index) => <p key={index} className="jc-error">{error.field ? `${error.field}: ` : ""}{error.message}</p>)}
      {diff && (
        <div id="jc-diff-result" data-jc-diff={`${diff.against}>${diff.version}`}>
          <p className="jc-help">Version {diff.against} → {diff.version}: added steps are green, changed ones blue on
            the canvas{Number(diff.version) !== current ? ` (the canvas shows version ${current}: steps are matched by key)` : ""};
            removed steps are drawn dashed.</p>
          <ul className="jc-diff-list">
            {diff.steps.added.map((key) => (
              <li key={`a:${key}`} className="jc-diff-added-item" data-jc-diff-step={key}>
                + <button type="button" className="jc-link" onClick={() => onSelect(key)}>{key}</button> added</li>))}
            {diff.steps.removed.map((key) => (
              <li key={`r:${key}`} className="jc-diff-removed-item" data-jc-diff-step={key}>− <code>{key}</code> removed
                ({diff.workflows.against.steps?.[key]?.type || "?"})</li>))}
            {Object.entries(diff.steps.changed).map(([key, fields]) => (
              <li key={`c:${key}`} className="jc-diff-changed-item" data-jc-diff-step={key}>
                ~ <button type="button" className="jc-link" onClick={() => onSelect(key)}>{key}</button> changed:
                <ul>{Object.entries(fields).map(([name, change]) => (
                  <li key={name}><code>{name}</code>: {short(change.old)} → {short(change.new)}</li>))}</ul>
              </li>
            ))}
            {Object.entries(diff.fields).map(([name, change]) => (
              <li key={`f:${name}`}><code>{name}</code>: {short(change.old)} → {short(change.new)}</li>))}
          </ul>
          {!diff.steps.added.length && !diff.steps.removed.length && !Object.keys(diff.steps.changed).length
            && !Object.keys(diff.fields).length && <p>No differences.</p>}
        </div>
      )}
      <button type="button" className="jc-small" onClick={onClose}>Close</button>
    </div>
  );
}
