// The one way the dashboard talks to the server: the public JSON API, with the token the user saved.
const TOKEN_KEY = "rnnlab.token";

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {}

function headers(json) {
  const h = {};
  const token = getToken();
  if (token) h.Authorization = `Bearer ${token}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function detail(response) {
  try {
    const body = await response.json();
    if (body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch { /* not JSON: fall through */ }
  return `HTTP ${response.status}`;
}

async function send(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const message = await detail(response);
    throw new ApiError(response.status === 401 ? `${message} (save the API token at the top)` : message);
  }
  return response;
}

export async function getJSON(path) {
  return (await send("GET", path)).json();
}

export async function postJSON(path, body) {
  return (await send("POST", path, body)).json();
}

// An image the API draws, as an object URL: fetched with the token, unlike a bare <img src>.
export async function imageURL(path) {
  return URL.createObjectURL(await (await send("GET", path)).blob());
}

// POST `body` and call `onEvent` with each server-sent event's JSON data as soon as it arrives.
export async function streamEvents(path, body, onEvent) {
  const response = await send("POST", path, body);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
      if (!data.length) continue;  // a comment (keep-alive) or a bare event name
      const event = JSON.parse(data.join("\n"));
      if (event.error) throw new ApiError(event.detail || event.error);
      onEvent(event);
    }
  }
}

// Call `tick` now and every `ms` until it returns false; a failed tick shows its error and retries.
export function poll(tick, ms, onError) {
  const run = async () => {
    let again = true;
    try {
      again = (await tick()) !== false;
      onError(null);
    } catch (error) {
      onError(error);
    }
    if (again) setTimeout(run, ms);
  };
  run();
}

// A DOM element; children are nodes or strings (set as text, never parsed as HTML).
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function showError(node, error) {
  node.hidden = !error;
  node.textContent = error ? String(error.message || error) : "";
}

export function formatNumber(value, digits = 4) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
}

export function formatEta(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// How long ago an ISO time was, "3 s ago" or "2 min ago"; a clock a little ahead of this one reads "just now".
export function formatAgo(iso, now = Date.now()) {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 1) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

export function formatPercent(fraction) {
  return `${Math.floor(fraction * 100)} %`;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

// The named fields of a form's enabled controls, numbers (and ids) as numbers, empty ones left out.
export function formValues(form) {
  const values = {};
  for (const control of form.elements) {
    if (!control.name || control.matches(":disabled") || control.value === "") continue;
    const numeric = control.type === "number" || control.name.endsWith("_id");
    values[control.name] = numeric ? Number(control.value) : control.value;
  }
  return values;
}
