// wxpush's side of the console for one app: its token state (never the token), follower
// sync and quota (from /console/state and /v1). Its lists are lists.js and rows.js.

import { query } from "./api.js";
import { button, duration, el, problem, replace } from "./dom.js";

/** The app's header: kind, token, follower sync, and a quota button. */
export function drawApp(root, api, app) {
  const t = app.token;
  let token;
  if (t.state === "valid") token = `token valid for ${duration(t.expires_in)}`;
  else if (t.state === "expired") token = "token expired";
  else if (t.state === "none") token = "no token yet (fetched on the first call)";
  else token = `token: ${t.message ?? t.state}`;
  if (t.refreshing) token += " · refreshing";
  const lines = [el("span", { class: "app-token", text: token })];
  if (t.last_failure) {
    const f = t.last_failure;
    lines.push(el("span", { class: "chip bad", text: `last refresh failed: ${f.errcode ?? ""} ${f.message}` }));
  }
  const sync = app.follower_sync;
  if (sync && sync.phase) {
    const of = sync.total ? ` of ${sync.total}` : "";
    const text = `follower sync ${sync.state} (${sync.phase}): ${sync.followers} followers${of}`;
    lines.push(el("span", { class: sync.last_error ? "chip bad" : "chip", text }));
  }
  const quotaOut = el("output", { class: "quota" });
  const path = app.kind === "official_account" ? "/cgi-bin/message/template/send" : "/cgi-bin/message/subscribe/send";
  const quota = button("Quota", async () => {
    const answer = await api.get(`/v1/apps/${app.appid}/quota${query({ path })}`);
    quotaOut.textContent = answer.ok
      ? `${path}: ${answer.data.used} used of ${answer.data.daily_limit} today`
      : problem(answer);
  });
  const kind = app.kind === "official_account" ? "公众号 official account" : "小程序 mini program";
  const linked = app.linked_official_account ? ` · linked to ${app.linked_official_account}` : "";
  replace(
    root,
    el("div", { class: "app-title" }, el("strong", { text: app.appid }), ` ${kind}${linked}`),
    el("div", { class: "app-lines" }, lines, quota, quotaOut),
  );
}
