/*
 * Code editors (CodeMirror 6) over a form's template fields.
 *
 * Each configured field's textarea (or input) stays the form field: it is hidden, the editor shows
 * its text, and every edit writes the text back and fires an "input" event on it, so the admin's
 * save, validation and the unsaved-changes guard see it as typed. Without JavaScript the textarea
 * is shown and works as before.
 *
 * Highlighting: "html" is Liquid over HTML (@codemirror/lang-liquid with @codemirror/lang-html as
 * its base), "text" is Liquid over plain text, "channel" is "html" while the form's channel is
 * email and "text" otherwise (it follows the channel select).
 *
 * CSP: CodeMirror injects its styles as one <style> element (style-mod); it carries the page's
 * nonce (EditorView.cspNonce), the only inline style the page's policy lets through. Everything else
 * goes through the CSSOM.
 */
import { EditorView, basicSetup, minimalSetup } from "codemirror";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { LanguageSupport, StreamLanguage, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { html } from "@codemirror/lang-html";
import { liquid } from "@codemirror/lang-liquid";

// Plain text under the Liquid: lang-liquid's own default base is HTML, which would read an SMS's
// "<3" as a tag and close tags as one types.
const plainText = StreamLanguage.define({
  name: "text",
  token(stream) {
    stream.skipToEnd();
    return null;
  },
});

function language(mode, channel) {
  const asHtml = mode === "html" || (mode === "channel" && channel === "email");
  return liquid({ base: asHtml ? html() : new LanguageSupport(plainText) });
}

// One line (subject, preheader): Enter does nothing and pasted line breaks become spaces.
const oneLine = [
  Prec.highest(keymap.of([{ key: "Enter", run: () => true }])),
  EditorState.transactionFilter.of((tr) => {
    if (!tr.docChanged || tr.newDoc.lines <= 1) return tr;
    const changes = [];
    tr.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
      changes.push({ from: fromA, to: toA, insert: inserted.toString().replace(/\r?\n|\r/g, " ") });
    });
    return { changes, scrollIntoView: true };
  }),
];

function labelFor(field) {
  const label = field.id ? document.querySelector(`label[for="${CSS.escape(field.id)}"]`) : null;
  if (label && !label.id) label.id = `${field.id}-label`;
  return label;
}

/**
 * Make editors for `fields` ([{name, mode, single_line}]) of `form`. Returns
 * {name: {view, wrapper, field}}; fields missing from the form (read-only pages) are skipped.
 */
export function makeEditors(form, fields, nonce) {
  const editors = {};
  const channelSelect = form.elements.namedItem("channel");
  const channel = () => (channelSelect && "value" in channelSelect ? channelSelect.value : "");
  for (const spec of fields) {
    const field = form.elements.namedItem(spec.name);
    if (!field || !("value" in field) || field.disabled || field.readOnly) continue;
    const compartment = new Compartment();
    const label = labelFor(field);
    const wrapper = document.createElement("div");
    wrapper.className = `ulak-editor ulak-editor-${spec.single_line ? "line" : "block"}`;
    wrapper.dataset.ulakEditor = spec.name;
    const view = new EditorView({
      parent: wrapper,
      state: EditorState.create({
        doc: field.value,
        extensions: [
          spec.single_line ? [minimalSetup, syntaxHighlighting(defaultHighlightStyle), oneLine] : basicSetup,
          spec.single_line ? [] : EditorView.lineWrapping,
          compartment.of(language(spec.mode, channel())),
          EditorView.cspNonce.of(nonce || ""),
          EditorView.contentAttributes.of(label ? { "aria-labelledby": label.id } : { "aria-label": spec.name }),
          EditorView.updateListener.of((update) => {
            if (!update.docChanged) return;
            field.value = update.state.doc.toString();
            field.dispatchEvent(new Event("input", { bubbles: true }));
          }),
        ],
      }),
    });
    field.classList.add("ulak-editor-source");
    field.insertAdjacentElement("afterend", wrapper);
    if (label) label.addEventListener("click", () => view.focus());
    editors[spec.name] = { view, wrapper, field, compartment, mode: spec.mode };
  }
  if (channelSelect) {
    channelSelect.addEventListener("change", () => {
      for (const editor of Object.values(editors)) {
        if (editor.mode !== "channel") continue;
        editor.view.dispatch({ effects: editor.compartment.reconfigure(language(editor.mode, channel())) });
      }
    });
  }
  return editors;
}
