/*
 * The unsaved-changes guard (the message editor's pattern, frontend/src/message-editor/guard.js,
 * for a page without a form): with edits not saved, leaving asks first — closing, reloading or
 * going elsewhere (the browser's own question, through beforeunload) and clicking a link of the
 * page (a confirm). `dirty` is asked each time; `release` lets the page go without asking.
 */
const QUESTION = "The workflow has unsaved changes. Leave this page and lose them?";

export function guardUnsaved(dirty) {
  let leaving = false;
  const unsaved = () => !leaving && dirty();
  const onBeforeUnload = (event) => {
    if (!unsaved()) return;
    event.preventDefault();
    event.returnValue = "";
  };
  const onClick = (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
    if (!link || (link.target && link.target !== "_self") || link.hasAttribute("download")) return;
    const href = link.getAttribute("href") || "";
    if (href.startsWith("#") || href.startsWith("javascript:")) return;
    if (!unsaved()) return;
    if (window.confirm(QUESTION)) {
      leaving = true; // the browser must not ask a second time
    } else {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  };
  window.addEventListener("beforeunload", onBeforeUnload);
  document.addEventListener("click", onClick, true);
  return {
    release() {
      leaving = true;
    },
    stop() {
      window.removeEventListener("beforeunload", onBeforeUnload);
      document.removeEventListener("click", onClick, true);
    },
  };
}
