/*
 * The unsaved-changes guard: leaving the page with edits that are not saved asks first.
 *
 * "Edits" means the form's fields differ from what the page loaded with (editors write their
 * textareas, so typing counts), or the page came back from a save that failed (its errors are
 * shown: nothing was saved). Leaving: closing or reloading the tab, or going elsewhere (the
 * browser's own "Leave site?" question, through beforeunload), and clicking a link of the page
 * (a confirm). Submitting the form, the save, clears it.
 */
const QUESTION = "You have unsaved changes. Leave this page and lose them?";

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
  let leaving = false;
  const dirty = () => !leaving && (failedSave || snapshot(form) !== initial);

  form.addEventListener("submit", () => {
    leaving = true;
  });
  window.addEventListener("beforeunload", (event) => {
    if (!dirty()) return;
    event.preventDefault();
    event.returnValue = "";
  });
  document.addEventListener(
    "click",
    (event) => {
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
      if (!link || (link.target && link.target !== "_self") || link.hasAttribute("download")) return;
      const href = link.getAttribute("href") || "";
      if (href.startsWith("#") || href.startsWith("javascript:")) return;
      // The admin's "add/change related object" links open a popup; the page stays.
      if (link.classList.contains("related-widget-wrapper-link") || link.classList.contains("related-lookup")) return;
      if (!dirty()) return;
      if (window.confirm(QUESTION)) {
        leaving = true; // the browser must not ask a second time
      } else {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );
  return { dirty };
}
