/*
 * Ulak console: the segment builder island (React + react-querybuilder).
 *
 * Markup (profiles/templates/admin/profiles/segment/change_form.html):
 *   <script type="application/json" id="segment-builder-data">{schema, conditions, segment, urls,
 *     editable, kind, debounce_ms}</script>
 *   <div id="segment-builder" data-ulak-segment-builder="segment-builder-data" hidden></div>
 * The island moves itself next to the form's `conditions` textarea, which stays the field the form
 * posts: the builder writes it on every change, and it is the island's JSON view. Without
 * JavaScript the textarea works as before.
 */
import React from "react";
import { createRoot } from "react-dom/client";
import { SegmentBuilder } from "./SegmentBuilder.jsx";

function start() {
  const mount = document.querySelector("[data-ulak-segment-builder]");
  if (!mount) return;
  let data;
  try {
    data = JSON.parse(document.getElementById(mount.dataset.ulakSegmentBuilder).textContent);
  } catch (error) {
    mount.hidden = false;
    mount.textContent = "The condition builder could not start; edit the conditions as JSON.";
    return;
  }
  const textarea = document.querySelector("textarea[name=conditions]");
  const rawField = textarea || document.querySelector(".field-conditions .readonly");
  if (rawField) {
    const holder = document.createElement("div");
    holder.className = "sb-holder";
    rawField.before(holder);
    holder.append(mount, rawField);
  }
  mount.hidden = false;
  mount.dataset.ulakSegmentBuilderReady = "1";
  createRoot(mount).render(
    <SegmentBuilder data={data} textarea={textarea} rawField={rawField} kindSelect={document.querySelector("select[name=kind]")} />,
  );
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
