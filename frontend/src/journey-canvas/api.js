/* JSON requests to the canvas's admin endpoints (a session login; the page's CSRF token). */

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** POST `body` as JSON; resolves to {status, data} (data: the JSON answer, or null). */
export async function postJson(url, body, { signal } = {}) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
    signal,
  });
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  return { status: response.status, data };
}

/** GET `url` (with `params` as its query) as JSON; resolves to {status, data}. */
export async function getJson(url, params = {}, { signal } = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== undefined && value !== null
    && value !== "")).toString();
  const response = await fetch(query ? `${url}?${query}` : url, {
    credentials: "same-origin", headers: { Accept: "application/json" }, signal,
  });
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  return { status: response.status, data };
}
