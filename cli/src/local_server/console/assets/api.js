// The console's requests: /v1 and /console/state with the bearer key, the /sandbox
// controls without it (they answer this machine only). Every answer comes back as
// { ok, status, data }; a network failure throws.

export class Api {
  constructor(key) {
    this.key = key;
    /** Called once when the server refuses the key (401). */
    this.onUnauthorized = () => {};
  }

  /** `GET` with the key. */
  get(path) {
    return this.request("GET", path);
  }

  /** `POST` of JSON with the key. */
  post(path, body) {
    return this.request("POST", path, body);
  }

  /** A `/sandbox` control: `GET` when `body` is undefined, else `POST` of JSON. */
  sandbox(path, body) {
    return this.request(body === undefined ? "GET" : "POST", `/sandbox${path}`, body, false);
  }

  async request(method, path, body, withKey = true) {
    const headers = { Accept: "application/json" };
    if (withKey) headers.Authorization = `Bearer ${this.key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (withKey && res.status === 401) this.onUnauthorized();
    return { ok: res.ok, status: res.status, data };
  }
}

/** `?name=value&…` of the pairs whose value is set. */
export function query(pairs) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(pairs)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
