// The emulator's tools above the phones: add a user, move the clock, inject a fault into the
// next call to a WeChat path, invalidate the app's token, have WeChat intercept a template.
// Each is one /sandbox control.

import { button, el, problem, replace } from "./dom.js";

const HOUR = 3600;

/** The WeChat paths a fault can be put on, and the faults offered. */
const PATHS = [
  "/cgi-bin/message/template/send",
  "/cgi-bin/message/subscribe/send",
  "/cgi-bin/message/subscribe/bizsend",
  "/cgi-bin/message/custom/send",
  "/cgi-bin/stable_token",
];
const FAULTS = {
  "errcode -1 (系统繁忙)": { errcode: -1 },
  "errcode 45009 (配额用尽)": { errcode: 45009 },
  "errcode 43004 (未关注)": { errcode: 43004 },
  "HTTP 503": { http_status: 503 },
  "延迟 2 s": { delay_ms: 2000 },
};

/**
 * Draws the tools into `root` for the app `app()` returns ({appid, kind}) and its templates
 * (`templates()`); `say` shows each outcome, `after` refreshes the page. Returns what
 * refreshes the template choice.
 */
export function drawTools(root, api, app, templates, say, after) {
  const run = async (what, path, body) => {
    const answer = await api.sandbox(path, body);
    say(answer.ok ? what : `${what}: ${problem(answer)}`);
    await after();
  };

  const openid = el("input", { "aria-label": "openid", value: "o_alice", size: 14, spellcheck: "false" });
  const addUser = button("添加用户", async () => {
    const a = app();
    const id = openid.value.trim();
    if (!id) return say("添加用户: the openid is empty");
    // A follower of an official account follows (WeChat pushes `subscribe` to wxpush); a
    // mini program user just exists.
    if (a.kind === "official_account") {
      await run(`${id} 关注了 ${a.appid}`, `/users/${encodeURIComponent(id)}/follow`, { appid: a.appid });
    } else {
      await run(`${id} 是 ${a.appid} 的用户`, "/users", { appid: a.appid, openid: id });
    }
  });

  const path = el("select", { "aria-label": "WeChat path" });
  for (const p of PATHS) path.append(el("option", { value: p, text: p }));
  const fault = el("select", { "aria-label": "fault" });
  for (const name of Object.keys(FAULTS)) fault.append(el("option", { value: name, text: name }));
  const inject = button("注入故障", () =>
    run(`fault on the next ${path.value}: ${fault.value}`, "/faults", { path: path.value, ...FAULTS[fault.value] }),
  );

  // WeChat intercepts the chosen template's next messages (errcode 0, never delivered).
  const template = el("select", { "aria-label": "template to block" });
  const blockable = () => (templates() ?? []).filter((t) => t.kind === "template");
  const block = button("拦截模板", () => {
    if (!template.value) return say("拦截模板: the app has no template-message template");
    return run(`WeChat intercepts ${template.value} from now on`, `/templates/${encodeURIComponent(template.value)}/block`, { appid: app().appid });
  });
  /** Refills the template choice (the app's templates change). */
  const update = () => {
    const ids = blockable().map((t) => t.id);
    if (JSON.stringify(ids) === template.dataset.ids) return;
    template.dataset.ids = JSON.stringify(ids);
    replace(template, blockable().map((t) => el("option", { value: t.id, text: t.title || t.id })));
  };

  replace(
    root,
    el("div", { class: "tool" }, openid, addUser),
    el(
      "div",
      { class: "tool" },
      button("时钟 +1 小时", () => run("clock +1 h", "/clock", { advance_secs: HOUR })),
      button("时钟 +2 天", () => run("clock +48 h", "/clock", { advance_secs: 48 * HOUR })),
      button("令牌失效", () => run("the app's token now answers 40001", "/tokens/invalidate", { appid: app().appid })),
    ),
    el("div", { class: "tool" }, path, fault, inject),
    el("div", { class: "tool" }, template, block),
  );
  update();
  return update;
}
