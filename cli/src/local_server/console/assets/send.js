// "Send a message": one POST /v1/apps/{appid}/messages from a small form, so that a first
// message reaches a phone without writing any JSON.

import { button, el, problem, replace } from "./dom.js";

/** `key=value` lines as a template's data. */
function parseData(text) {
  const data = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf("=");
    if (at <= 0) continue;
    data[line.slice(0, at).trim()] = { value: line.slice(at + 1).trim() };
  }
  return data;
}

/**
 * The form, drawn into `root` for the app `app()` returns; `choices()` gives the phones'
 * openids and the app's templates to suggest; `after` refreshes the page.
 */
export function drawSendForm(root, api, app, choices, after) {
  const type = el("select", { "aria-label": "message type" });
  const to = el("input", { "aria-label": "to (openid)", list: "send-to", size: 14, spellcheck: "false" });
  const toList = el("datalist", { id: "send-to" });
  const template = el("input", { "aria-label": "template id", list: "send-templates", size: 16, spellcheck: "false" });
  const templateList = el("datalist", { id: "send-templates" });
  const data = el("textarea", { "aria-label": "data (key=value a line)", rows: 3, cols: 24, spellcheck: "false" });
  const text = el("input", { "aria-label": "text", size: 22, value: "您好" });
  const result = el("output", { class: "send-result" });

  const fields = () => {
    const custom = type.value === "custom";
    template.hidden = custom;
    data.hidden = custom;
    text.hidden = !custom;
  };
  type.addEventListener("change", fields);

  const send = button("Send", async () => {
    const to_ = to.value.trim();
    const body =
      type.value === "custom"
        ? { type: "custom", to: { openid: to_ }, msgtype: "text", text: { content: text.value } }
        : { type: type.value, to: { openid: to_ }, template_id: template.value.trim(), data: parseData(data.value) };
    const answer = await api.post(`/v1/apps/${app().appid}/messages`, body);
    result.textContent = answer.ok ? `${answer.data.id}: ${answer.data.status}` : problem(answer);
    result.className = answer.ok ? "send-result ok" : "send-result bad";
    await after();
  });

  /** Refills the choices for the current app, keeping what was typed. */
  const update = () => {
    const a = app();
    const kinds = a.kind === "official_account" ? ["template", "oa_subscribe", "custom"] : ["subscribe", "custom"];
    if (type.dataset.for !== a.appid) {
      type.dataset.for = a.appid;
      replace(type, kinds.map((k) => el("option", { value: k, text: k })));
      fields();
    }
    const { openids, templates } = choices();
    replace(toList, openids.map((o) => el("option", { value: o })));
    replace(templateList, templates.map((t) => el("option", { value: t.id, text: t.title })));
    if (!to.value && openids.length > 0) to.value = openids[0];
    if (!template.value && templates.length > 0) template.value = templates[0].id;
    suggestData();
  };

  /** Until the data is edited by hand: one `key=你好` line per key of the chosen template. */
  const suggestData = () => {
    if (data.value && data.dataset.suggested !== data.value) return;
    const chosen = choices().templates.find((t) => t.id === template.value.trim());
    const keys = chosen?.keys?.length ? chosen.keys : ["thing1"];
    data.value = keys.map((k) => `${k}=你好`).join("\n");
    data.dataset.suggested = data.value;
  };
  template.addEventListener("change", suggestData);

  replace(root, type, to, toList, template, templateList, data, text, send, result);
  update();
  return update;
}
