/*
 * Ulak console: the message editor island (docs/console-editor.md).
 *
 * Markup (admin/campaigns/message_editor/change_form.html): the page's configuration as
 * json_script "ulak-message-editor":
 *
 *   {"nonce": "<the request's CSP nonce>", "form": "<the admin form's id>",
 *    "fields": [{"name": "body", "mode": "html" | "text" | "channel", "single_line": false}, ...],
 *    "preview": null | {"url", "frame_url", "search_url", "test_url", "new", "user_email", "test",
 *                "test_channels", "saved"}}
 *
 * On a new message's add page "preview" names the model-level endpoints (no object id) and "new" is
 * true. A layout's or a snippet's page has a preview too, without a test send ("test" false).
 *
 * The nonce is CodeMirror's only (its injected <style> element); the rendered email is never part
 * of this page: it is the frame endpoint's own document (preview.js).
 *
 * It turns the fields into code editors (editors.js), guards unsaved edits (guard.js) and drives
 * the live preview (preview.js): a transactional message's (with the test send), a layout's and a
 * snippet's, on their add pages too.
 */
import { makeEditors } from "./editors.js";
import { guardUnsaved } from "./guard.js";
import { setUpPreview } from "./preview.js";

function start() {
  const source = document.getElementById("ulak-message-editor");
  if (!source) return;
  let config;
  try {
    config = JSON.parse(source.textContent);
  } catch (_error) {
    return; // the plain form still works
  }
  const form = document.getElementById(config.form);
  if (!form) return;
  const editors = makeEditors(form, config.fields || [], config.nonce);
  guardUnsaved(form);
  if (config.preview) setUpPreview(form, config, editors);
  document.body.dataset.ulakMessageEditor = "ready";
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
