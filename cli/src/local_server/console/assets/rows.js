// One row of each list: a message with its status and what WeChat said, a batch with its
// progress bar and counts, an event with its forwarding state. Text only.

import { clock, el, stamp } from "./dom.js";

/** The status chip's look for each message status. */
const STATUS_CLASS = {
  sent: "chip",
  delivered: "chip ok",
  failed: "chip bad",
  user_blocked: "chip bad",
  blocked: "chip bad",
  unknown: "chip warn",
};

/** An id as `…1a2b3c4d`: its last (random) digits (the whole id is its title). */
export function short(id) {
  return `…${id.slice(-8)}`;
}

/** A time as `HH:MM:SS` today, else `MM-DD HH:MM:SS`. */
function when(secs) {
  if (typeof secs !== "number") return "-";
  const today = new Date().toDateString() === new Date(secs * 1000).toDateString();
  return today ? clock(secs) : stamp(secs);
}

/** A message: when, id, type, recipient, status, what WeChat said, batch. */
export function messageRow(m) {
  const wechat = [];
  if (m.delivery?.status) wechat.push(m.delivery.status);
  else if (m.wechat_msgid) wechat.push(`msgid ${m.wechat_msgid}`);
  // The error names the errcode when WeChat gave one.
  if (m.error) wechat.push(m.error);
  else if (m.wechat_errcode !== undefined) wechat.push(`errcode ${m.wechat_errcode}`);
  return el(
    "tr",
    { dataset: { id: m.id } },
    el("td", { class: "nowrap", text: when(m.created_at) }),
    el("td", { class: "mono", text: short(m.id), title: m.id }),
    el("td", { text: m.type ?? "" }),
    el("td", { class: "mono", text: m.to?.openid ?? m.to?.unionid ?? "" }),
    el("td", {}, el("span", { class: STATUS_CLASS[m.status] ?? "chip", text: m.status })),
    el("td", { class: "wechat", text: wechat.join(" · ") }),
    el("td", { class: "mono", text: m.batch_id ? short(m.batch_id) : "" }),
  );
}

/** A batch: when, id, state, a bar of what is settled, and the counts. */
export function batchRow(b) {
  const held = (b.no_grant ?? 0) + (b.capped ?? 0);
  const settled = b.sent + b.failed + b.unknown + b.cancelled + held;
  const all = Math.max(b.total ?? 0, settled + b.queued);
  // A finished batch is whole, whatever its counts leave out (a recipient that was the same
  // person as another is counted in neither).
  const finished = b.state === "done" || b.state === "cancelled";
  const percent = finished ? 100 : all > 0 ? Math.floor((settled * 100) / all) : 0;
  const state = b.state === "done" ? "chip ok" : b.state === "paused" || b.state === "failed" ? "chip warn" : "chip";
  const counts = [`sent ${b.sent}`, `failed ${b.failed}`, `unknown ${b.unknown}`];
  if (b.cancelled) counts.push(`cancelled ${b.cancelled}`);
  if (b.no_grant) counts.push(`no grant ${b.no_grant}`);
  if (b.capped) counts.push(`capped ${b.capped}`);
  if (b.queued) counts.push(`queued ${b.queued}`);
  return el(
    "tr",
    { dataset: { id: b.id } },
    el("td", { class: "nowrap", text: when(b.created_at) }),
    el("td", { class: "mono", text: short(b.id), title: b.id }),
    el("td", {}, el("span", { class: state, text: b.state })),
    el(
      "td",
      { class: "progress" },
      el("progress", { max: 100, value: percent, "aria-label": `batch ${b.id}` }),
      el("span", { class: "percent", text: `${percent} %` }),
    ),
    el("td", { text: `${counts.join(" · ")} of ${all}` }),
  );
}

/** The forwarding chip's look for each state. */
const FORWARD_CLASS = { off: "chip off", pending: "chip warn", forwarded: "chip ok", failed: "chip bad" };

/** An event: when it came, what it is, from whom, and its forwarding. */
export function eventRow(e) {
  const what = e.msg_type === "event" ? e.event : e.msg_type;
  const f = e.forwarding;
  let forwarding = f.state;
  if (f.attempts) forwarding += ` · ${f.attempts} attempts`;
  if (f.last_error) forwarding += ` · ${f.last_error}`;
  return el(
    "tr",
    { dataset: { id: e.id } },
    el("td", { class: "nowrap", text: when(e.received_at) }),
    el("td", { text: what ?? "" }),
    el("td", { class: "mono", text: e.openid ?? "" }),
    el("td", {}, el("span", { class: FORWARD_CLASS[f.state] ?? "chip", text: forwarding })),
  );
}
