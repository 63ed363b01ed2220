/*
 * The live preview of a transactional message, a layout or a snippet (markup:
 * admin/campaigns/message_editor/preview_panel.html).
 *
 * Whenever the form changes (an editor, the channel, the layout, the payload...), the person chosen
 * or the trigger or event data, and after a pause (DEBOUNCE_MS), the form's fields are posted to the
 * preview endpoint, which renders them as the send path would (nothing is saved). The answer is
 * shown: subject and sender, the email's text version, an SMS with its length, encoding and
 * segments as the server counted them, or the errors, each naming its field (and the field's
 * editor is marked). Only the latest answer is shown; an older request still on its way is aborted.
 *
 * The email's HTML is not put in the page: after each successful preview of an email the same
 * fields are posted, by a form whose target is the preview's frame, to the frame endpoint, which
 * answers the rendered email as a document of its own with its own policy (inline styles, images
 * and fonts from anywhere, no script at all). The frame is sandbox="": nothing in the message runs,
 * and the page keeps the site's strict policy. A newer post replaces the frame's document.
 *
 * The person and the trigger and event data are kept for the message in the tab's sessionStorage (gone
 * when the tab closes), so a save, which reloads the page, previews the same way again.
 *
 * On a new message's add page the endpoints are the model-level ones (no object id: config.preview.new)
 * and the same code runs (the test send included); until the form's channel is chosen nothing is
 * posted (data-state="idle"). A layout's or a snippet's page has no channel and no test send: its
 * answer (channel "layout" or "snippet", frame true) is HTML for the frame and its text.
 *
 * The panel gets data-state="idle" | "loading" | "ready" | "error" and, for the frame, data-frame="loading" |
 * "ready" and data-frame-loads (browser tests wait on them).
 */
const DEBOUNCE_MS = 400;
const SEARCH_DEBOUNCE_MS = 250;
const TEST_CHANNELS_WITH_PHONE = ["sms", "whatsapp"];
const OWN_LABELS = {
  preview_trigger: "Trigger data",
  preview_event: "Event data",
  preview_person: "Person",
  test_to: "Phone number",
  channel: "Channel",
};

function byId(id) {
  return document.getElementById(id);
}

function labelOf(form, name) {
  if (!name) return "";
  if (OWN_LABELS[name]) return OWN_LABELS[name];
  const field = form.elements.namedItem(name);
  const label = field && field.id ? document.querySelector(`label[for="${CSS.escape(field.id)}"]`) : null;
  return label ? label.textContent.replace(/:\s*$/, "").trim() : name;
}

// The form's fields; on a page shown read-only the saved message's (`saved`), with the
// form's CSRF token.
function formBody(form, saved, extra) {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(saved || {})) body.set(name, value);
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string") body.append(name, value);
  }
  for (const [name, value] of Object.entries(extra)) body.set(name, value);
  return body;
}

async function postForm(url, body, signal) {
  const response = await fetch(url, {
    method: "POST",
    body,
    signal,
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" },
  });
  let data = null;
  try {
    data = await response.json();
  } catch (_error) {
    data = null;
  }
  return { status: response.status, data };
}

function errorItems(form, errors) {
  return errors.map((error) => {
    const item = document.createElement("li");
    const label = labelOf(form, error.field);
    item.textContent = label ? `${label}: ${error.message}` : error.message;
    if (error.field) item.dataset.field = error.field;
    return item;
  });
}

// A form outside the change form (forms do not nest) that posts into the preview's frame.
function frameForm(panel, url, target) {
  const sender = document.createElement("form");
  sender.method = "post";
  sender.action = url;
  sender.target = target;
  sender.hidden = true;
  sender.id = "ulak-preview-frame-form";
  panel.append(sender);
  return sender;
}

function postIntoFrame(sender, body) {
  const inputs = [];
  for (const [name, value] of body) {
    const input = document.createElement("input");
    input.type = "hidden"; // keeps line breaks, unlike a text input
    input.name = name;
    input.value = value;
    inputs.push(input);
  }
  sender.replaceChildren(...inputs);
  sender.submit(); // navigates the frame only: no submit event, nothing of the page's guard
}

function remembered(key) {
  try {
    return JSON.parse(window.sessionStorage.getItem(key) || "null") || {};
  } catch (_error) {
    return {};
  }
}

function remember(key, value) {
  try {
    window.sessionStorage.setItem(key, JSON.stringify(value));
  } catch (_error) {
    // storage full or refused: the preview works, it is only not kept
  }
}

export function setUpPreview(form, config, editors) {
  const panel = byId("ulak-preview");
  if (!panel) return;
  const preview = config.preview;
  panel.hidden = false;
  const status = byId("ulak-preview-status");
  const errorList = byId("ulak-preview-errors");
  const result = byId("ulak-preview-result");
  const trigger = byId("ulak-preview-trigger");
  const eventData = byId("ulak-preview-event");
  const frame = byId("ulak-preview-html");
  const sender = frameForm(panel, preview.frame_url, frame.name);
  const channelSelect = form.elements.namedItem("channel");
  let person = null;
  let timer = null;
  let controller = null;
  let renders = 0;
  let frameLoads = 0;

  const channel = () => (channelSelect && "value" in channelSelect ? channelSelect.value : "");
  const storageKey = `ulak-message-editor:${preview.url}`;
  const keep = () => remember(storageKey, { person, trigger: trigger.value, event: eventData.value });

  function markFields(errors) {
    const failing = new Set(errors.map((error) => (error.field || "").split(".")[0]));
    for (const [name, editor] of Object.entries(editors)) {
      editor.wrapper.classList.toggle("ulak-editor-error", failing.has(name));
    }
  }

  function showErrors(errors) {
    errorList.replaceChildren(...errorItems(form, errors));
    markFields(errors);
  }

  function showSms(sms) {
    const block = byId("ulak-preview-sms");
    block.hidden = !sms;
    if (!sms) return;
    byId("ulak-sms-characters").textContent = String(sms.characters);
    byId("ulak-sms-encoding").textContent = sms.encoding;
    byId("ulak-sms-segments").textContent =
      sms.segments === 0 ? "0 (empty)" : `${sms.segments} (${sms.per_segment} ${sms.encoding === "GSM-7" ? "septets" : "units"} each)`;
    byId("ulak-sms-remaining").textContent = String(sms.remaining);
    const why = byId("ulak-sms-why");
    why.hidden = !sms.non_gsm.length;
    why.textContent = sms.non_gsm.length
      ? `UCS-2 because of ${sms.non_gsm.map((char) => JSON.stringify(char)).join(", ")}: not in the GSM 03.38 alphabet.`
      : "";
    panel.dataset.smsEncoding = sms.encoding;
    panel.dataset.smsSegments = String(sms.segments);
  }

  // The frame's load event (also for an error page): the document the latest post asked for.
  frame.addEventListener("load", () => {
    if (panel.dataset.frame !== "loading") return; // the frame's first, empty document
    frameLoads += 1;
    panel.dataset.frameLoads = String(frameLoads);
    panel.dataset.frame = "ready";
  });

  function showResult(data, body) {
    result.hidden = false;
    const isEmail = data.channel === "email";
    const framed = Boolean(data.frame); // an email, a layout or a snippet: HTML to show in the frame
    // An SMS, a push or an in-app message has a subject or a sender only when its fields say so;
    // a layout or a snippet has neither.
    byId("ulak-preview-meta").hidden = !isEmail && !data.subject && !data.sender;
    byId("ulak-preview-subject").textContent = data.subject || "—";
    byId("ulak-preview-sender").textContent = data.sender || "the channel's sender";
    byId("ulak-preview-html-block").hidden = !framed;
    if (framed) {
      panel.dataset.frame = "loading";
      postIntoFrame(sender, body);
    }
    byId("ulak-preview-text-title").textContent = isEmail ? "Text version" : "Text";
    byId("ulak-preview-text").textContent = data.text || "";
    const payload = data.payload && Object.keys(data.payload).length ? JSON.stringify(data.payload, null, 2) : "";
    byId("ulak-preview-payload-block").hidden = !payload;
    byId("ulak-preview-payload").textContent = payload;
    showSms(data.sms);
  }

  function extra() {
    return { preview_person: person ? String(person.pk) : "", preview_trigger: trigger.value, preview_event: eventData.value };
  }

  async function render() {
    if (controller) controller.abort();
    controller = null;
    if (channelSelect && !channel()) {
      // A new message (the add page) before its channel is chosen: nothing to render yet.
      showErrors([]);
      result.hidden = true;
      panel.dataset.state = "idle";
      status.textContent = "Choose the message's channel to see the preview.";
      return;
    }
    controller = new AbortController();
    const mine = controller;
    panel.dataset.state = "loading";
    status.textContent = "Rendering…";
    let answer;
    const body = formBody(form, preview.saved, extra());
    try {
      answer = await postForm(preview.url, body, mine.signal);
    } catch (error) {
      if (mine.signal.aborted) return;
      panel.dataset.state = "error";
      status.textContent = "The preview could not be reached.";
      return;
    }
    if (mine !== controller) return; // a newer render is on its way
    renders += 1;
    panel.dataset.renders = String(renders);
    if (answer.status === 200 && answer.data) {
      showErrors([]);
      showResult(answer.data, body);
      panel.dataset.state = "ready";
      status.textContent = `Rendered${person ? ` for ${person.label}` : ""}; nothing is saved.`;
    } else {
      const errors = (answer.data && answer.data.errors) || [{ field: null, message: `HTTP ${answer.status}` }];
      showErrors(errors);
      panel.dataset.state = "error";
      status.textContent = "The message cannot be rendered:";
    }
  }

  function schedule() {
    window.clearTimeout(timer);
    panel.dataset.state = "loading";
    timer = window.setTimeout(render, DEBOUNCE_MS);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  for (const sample of [trigger, eventData]) {
    sample.addEventListener("input", () => {
      keep();
      schedule();
    });
  }

  // --- the person ---------------------------------------------------------------------------
  const personText = byId("ulak-preview-person");
  function choose(found) {
    person = found;
    personText.replaceChildren();
    if (!found) {
      personText.append("No person: ");
      const code = document.createElement("code");
      code.textContent = "customer.*";
      personText.append(code, " is empty.");
    } else {
      personText.append(`For ${found.label} `);
      const clear = document.createElement("button");
      clear.type = "button";
      clear.className = "button ulak-preview-clear";
      clear.textContent = "Clear";
      clear.addEventListener("click", () => {
        choose(null);
        schedule();
      });
      personText.append(clear);
    }
    panel.dataset.person = found ? String(found.pk) : "";
    keep();
  }

  const search = byId("ulak-preview-person-search");
  const results = byId("ulak-preview-person-results");
  if (search && results && preview.search_url) {
    let searchTimer = null;
    let searchController = null;
    const find = async () => {
      const term = search.value.trim();
      if (searchController) searchController.abort();
      if (!term) {
        results.replaceChildren();
        return;
      }
      searchController = new AbortController();
      const mine = searchController;
      let data = null;
      try {
        const response = await fetch(`${preview.search_url}?q=${encodeURIComponent(term)}`, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          signal: mine.signal,
        });
        data = await response.json();
      } catch (_error) {
        if (mine.signal.aborted) return;
      }
      if (mine !== searchController) return;
      const people = (data && data.people) || [];
      if (!people.length) {
        const none = document.createElement("li");
        none.className = "ulak-preview-none";
        none.textContent = data && data.errors ? data.errors[0].message : "Nobody found.";
        results.replaceChildren(none);
        return;
      }
      results.replaceChildren(
        ...people.map((found) => {
          const item = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.className = "ulak-preview-person-choice";
          const label = [found.id, found.email].filter(Boolean).join(" · ") || found.cio_id;
          button.textContent = label;
          button.dataset.pk = String(found.pk);
          button.addEventListener("click", () => {
            choose({ pk: found.pk, label });
            results.replaceChildren();
            search.value = "";
            schedule();
          });
          item.append(button);
          return item;
        }),
      );
    };
    search.addEventListener("input", () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(find, SEARCH_DEBOUNCE_MS);
    });
  }

  // --- send a test to me ----------------------------------------------------------------------
  const button = byId("ulak-test-button");
  if (button && preview.test_url) {
    const phone = byId("ulak-test-phone");
    const toInput = byId("ulak-test-to");
    const email = byId("ulak-test-email");
    const unavailable = byId("ulak-test-unavailable");
    const outcome = byId("ulak-test-result");
    const follow = () => {
      const current = channel();
      const possible = preview.test_channels.includes(current);
      email.hidden = current !== "email";
      phone.hidden = !TEST_CHANNELS_WITH_PHONE.includes(current);
      unavailable.hidden = possible;
      button.disabled = !possible;
    };
    follow();
    if (channelSelect) channelSelect.addEventListener("change", follow);
    button.addEventListener("click", async () => {
      button.disabled = true;
      outcome.replaceChildren("Sending…");
      outcome.dataset.state = "sending";
      let answer;
      try {
        answer = await postForm(preview.test_url, formBody(form, preview.saved, { ...extra(), test_to: toInput.value }));
      } catch (_error) {
        answer = { status: 0, data: null };
      }
      button.disabled = false;
      follow();
      const delivery = answer.data && answer.data.delivery;
      if (answer.status === 200 && delivery) {
        const refused = delivery.reason;
        outcome.dataset.state = refused ? "refused" : "sent";
        outcome.replaceChildren(refused ? "Not sent: " : "Test queued: delivery ");
        if (refused) {
          outcome.append(`${delivery.reason} (delivery `);
        }
        const id = document.createElement(delivery.url ? "a" : "code");
        id.textContent = delivery.id;
        if (delivery.url) id.href = delivery.url;
        outcome.append(id, refused ? ")." : ` to ${delivery.recipient}, status ${delivery.status}.`);
        outcome.dataset.delivery = delivery.id;
      } else {
        outcome.dataset.state = "refused";
        const errors = (answer.data && answer.data.errors) || [{ field: null, message: `HTTP ${answer.status}` }];
        outcome.replaceChildren(
          "Not sent: ",
          errors.map((error) => (error.field ? `${labelOf(form, error.field)}: ${error.message}` : error.message)).join("; "),
        );
      }
    });
  }

  const kept = remembered(storageKey);
  if (typeof kept.trigger === "string") trigger.value = kept.trigger;
  if (typeof kept.event === "string") eventData.value = kept.event;
  const keptPerson = kept.person && Number.isInteger(kept.person.pk) ? kept.person : null;
  choose(keptPerson ? { pk: keptPerson.pk, label: String(keptPerson.label || keptPerson.pk) } : null);
  render();
}
