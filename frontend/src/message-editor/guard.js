/*
 * The unsaved-changes guard: leaving the page with edits that are not saved asks first
 * (frontend/src/leave-guard.js).
 *
 * "Edits" means the form's fields differ from what the page loaded with (editors write their
 * textareas, so typing counts), or the page came back from a save that failed (its errors are
 * shown: nothing was saved). Leaving: closing or reloading the tab, or going elsewhere (the
 * browser's own "Leave site?" question, through beforeunload), and clicking a link of the page
 * (a confirm); the admin's "add/change related object" links open a pop-up and do not ask.
 * Submitting the form, the save, clears it.
 */
import { guardLeaving } from "../leave-guard.js";

function snapshot(form) {
  const parts = [];
  for (const [name, value] of new FormData(form)) {
    if (name !== "csrfmiddlewaretoken" && typeof value === "string") parts.push(`${name}=${value}`);
  }
  return parts.join("\u0000");
}

export function guardUnsaved(form) {
  const initial = snapshot(form);
  const failedSave = form.querySelector(".errornote") !== null;
  const dirty = () => failedSave || snapshot(form) !== initial;
  const guard = guardLeaving({
    dirty,
    question: "You have unsaved changes. Leave this page and lose them?",
    ignoreLink: (link) =>
      link.classList.contains("related-widget-wrapper-link") || link.classList.contains("related-lookup"),
  });
  form.addEventListener("submit", () => guard.release());
  return { dirty };
}
