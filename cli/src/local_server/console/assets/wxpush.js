// wxpush's side of the console for one app: its token state (never the token) and follower
// sync (from /console/state), redrawn as they change, and two checks that call WeChat only
// when asked: the quota, and the messages WeChat intercepted. Its lists are lists.js and
// rows.js.

import { query } from "./api.js";
import { button, duration, el, problem, replace } from "./dom.js";

export class AppPanel {
  constructor(root, api) {
    this.api = api;
    this.appid = null;
    this.title = el("div", { class: "app-title" });
    this.state = el("div", { class: "app-lines" });
    this.checks = el("div", { class: "app-lines" });
    replace(root, this.title, this.state, this.checks);
  }

  /** Draws `app` (from /console/state); its checks are kept while the app stays chosen. */
  show(app) {
    if (app.appid !== this.appid) {
      this.appid = app.appid;
      const kind = app.kind === "official_account" ? "公众号 official account" : "小程序 mini program";
      const linked = app.linked_official_account ? ` · linked to ${app.linked_official_account}` : "";
      replace(this.title, el("strong", { text: app.appid }), ` ${kind}${linked}`);
      replace(this.checks, this.quota(app), app.kind === "official_account" && this.intercepted(app));
    }
    replace(this.state, tokenLines(app));
  }

  /** The Quota button: WeChat's count of today's sends on the app's main path. */
  quota(app) {
    const out = el("output", { class: "check" });
    const path = app.kind === "official_account" ? "/cgi-bin/message/template/send" : "/cgi-bin/message/subscribe/send";
    const check = button("Quota", async () => {
      const answer = await this.api.get(`/v1/apps/${app.appid}/quota${query({ path })}`);
      out.textContent = answer.ok ? `${path}: ${answer.data.used} used of ${answer.data.daily_limit} today` : problem(answer);
    });
    return [check, out];
  }

  /**
   * "Intercepted?": each template message template of the app through
   * `GET .../templates/{id}/blocked` (WeChat's queryblocktmplmsg), which marks the messages
   * found there `blocked`.
   */
  intercepted(app) {
    const out = el("output", { class: "check" });
    const check = button("Intercepted?", async () => {
      const listed = await this.api.get(`/v1/apps/${app.appid}/templates${query({ refresh: "true" })}`);
      if (!listed.ok) return void (out.textContent = problem(listed));
      const found = [];
      for (const t of listed.data.templates.filter((t) => t.kind === "template")) {
        const answer = await this.api.get(`/v1/apps/${app.appid}/templates/${encodeURIComponent(t.id)}/blocked`);
        if (!answer.ok) return void (out.textContent = problem(answer));
        if (answer.data.messages.length) found.push(`${t.title || t.id} ${answer.data.messages.length}`);
      }
      out.textContent = found.length ? `intercepted: ${found.join(", ")}` : "none intercepted";
    });
    return [check, out];
  }
}

/** The token (valid for how long, refreshing, the last failure) and the follower sync. */
function tokenLines(app) {
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
  if (sync?.phase) {
    const of = sync.total ? ` of ${sync.total}` : "";
    const failed = sync.last_error ? ` · last error: ${sync.last_error}` : "";
    const text = `follower sync ${sync.state} (${sync.phase}): ${sync.followers} followers${of}${failed}`;
    lines.push(el("span", { class: sync.last_error ? "chip bad" : "chip", text }));
  } else if (sync?.state === "unreadable") {
    lines.push(el("span", { class: "chip bad", text: `follower sync: ${sync.message}` }));
  }
  return lines;
}
