// Building the console's DOM. Every text goes in as a text node or through textContent,
// never as HTML, so that whatever a message, an openid or an error holds is shown, not run.

/**
 * A new element: `props` sets `class`, `text` (as text), `dataset`, event listeners (`onclick`:
 * a function) and plain attributes; `children` are nodes or strings (as text).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Appends nodes and strings (as text); skips null, undefined and false. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `node` holds. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** Unix seconds as local `HH:MM:SS` (`-` when missing). */
export function clock(secs) {
  if (typeof secs !== "number") return "-";
  return new Date(secs * 1000).toLocaleTimeString("zh-CN", { hour12: false });
}

/** Unix seconds as local `MM-DD HH:MM:SS`. */
export function stamp(secs) {
  if (typeof secs !== "number") return "-";
  const d = new Date(secs * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock(secs)}`;
}

/** Seconds as `1h 59m`, `4m 03s` or `12s`. */
export function duration(secs) {
  const s = Math.max(0, Math.round(secs));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** An API answer's error as one line: `422 validation_failed: data.thing1.value: …`. */
export function problem(answer) {
  const err = answer?.data?.error;
  if (err) return `${answer.status} ${err.code}: ${err.message}`;
  return `HTTP ${answer?.status ?? "?"}`;
}

/** A button that runs `action` once at a time (disabled while it runs). */
export function button(label, action, props = {}) {
  const b = el("button", { type: "button", ...props, text: label });
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

/**
 * The buttons between pages into `nav`: `newer` back to the page before (`pages.before` holds
 * the cursors that led here), `older` on to `next` (the answer's `next_cursor`); each moves
 * `pages.cursor` and runs `refresh`.
 */
export function drawPager(nav, pages, next, refresh, [newer, older]) {
  replace(
    nav,
    pages.before.length > 0 &&
      button(newer, async () => {
        pages.cursor = pages.before.pop();
        await refresh();
      }),
    next &&
      button(older, async () => {
        pages.before.push(pages.cursor);
        pages.cursor = next;
        await refresh();
      }),
  );
}
