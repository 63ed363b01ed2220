/* JSON requests to the canvas's admin endpoints (a session login; the page's CSRF token). */

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** The answer as {status, data} (data: its JSON, or null when it has none). */
async function answer(request) {
  const response = await request;
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  return { status: response.status, data };
}

/** POST `body` as JSON; resolves to {status, data}. */
export function postJson(url, body, { signal } = {}) {
  return answer(fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
    signal,
  }));
}

/** GET `url` (with `params` as its query) as JSON; resolves to {status, data}. */
export function getJson(url, params = {}, { signal } = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== undefined && value !== null
    && value !== "")).toString();
  return answer(fetch(query ? `${url}?${query}` : url, {
    credentials: "same-origin", headers: { Accept: "application/json" }, signal,
  }));
}
