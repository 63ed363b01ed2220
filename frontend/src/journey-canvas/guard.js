/*
 * The canvas's unsaved-changes guard (frontend/src/leave-guard.js, for a page without a form):
 * `dirty` is asked each time; `release` lets the page go without asking.
 */
import { guardLeaving } from "../leave-guard.js";

export function guardUnsaved(dirty) {
  return guardLeaving({ dirty, question: "The workflow has unsaved changes. Leave this page and lose them?" });
}
