/*
 * The console's unsaved-changes guard, shared by the islands (the message editor's form, the
 * journey canvas): with edits not saved, leaving asks first — closing, reloading or going elsewhere
 * (the browser's own question, through beforeunload) and clicking a link of the page (a confirm).
 *
 *   guardLeaving({dirty, question, ignoreLink}) -> {release(), stop()}
 *
 * `dirty()` is asked each time; `ignoreLink(link)` lets a link go without asking (e.g. the admin's
 * pop-up links); `release()` lets the page go without asking (a save in progress), `stop()` removes
 * the listeners.
 */
export function guardLeaving({ dirty, question, ignoreLink = () => false }) {
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
    if (ignoreLink(link) || !unsaved()) return;
    if (window.confirm(question)) {
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
