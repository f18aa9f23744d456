// Talking to the JSON API with the session cookie: CSRF header, JSON bodies, API.md errors.

/** An error answer from the API: `code` and `message` come from its JSON body. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from a 429's Retry-After
  }
}

/** The words for an error; a limit's refusal also says when to send again, in local time. */
export function describeError(error) {
  const message = error?.message || String(error);
  if (!(error instanceof ApiError) || error.status !== 429 || !error.retryAfter) return message;
  if (error.code === "too_many_replies") return message; // when one ends, which nobody knows
  const at = new Date(Date.now() + error.retryAfter * 1000);
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const day = at.toDateString() === new Date().toDateString() ? "" : " tomorrow";
  return `${message} You can send again${day} at ${time}.`;
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function errorFrom(response) {
  const body = await response.json().catch(() => ({}));
  const error = body.error || {};
  return new ApiError(
    response.status,
    error.code || "http_error",
    error.message || `The server answered ${response.status}.`,
    Number(response.headers.get("Retry-After")) || null,
  );
}

/** fetch() a path of this site; a non-2xx answer throws ApiError. `body` is sent as JSON. */
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const response = await fetch(path, {
    method,
    signal,
    credentials: "same-origin",
    headers: {
      Accept: "application/json, text/event-stream",
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...(method === "GET" ? {} : { "X-CSRFToken": csrfToken() }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    // The session ended (signed out in another tab): the log-in page brings the user back.
    window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** The JSON answer of a request, or null for 204. */
export async function json(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}
