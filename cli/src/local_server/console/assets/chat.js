// One message in a phone's chat, as the emulator says WeChat shows it (GET /sandbox/phones:
// kind, title, lines, options). Text only: nothing from the message becomes markup.

import { el, clock } from "./dom.js";

const CARD_KINDS = new Set(["template", "subscribe", "news", "link", "miniprogram"]);

/** The chat item of one delivered message. */
export function chatItem(m) {
  const item = el("li", { class: `chat-item kind-${m.kind}`, dataset: { msgid: m.msgid } });
  item.append(el("time", { class: "chat-time", text: clock(m.at) }));
  item.append(CARD_KINDS.has(m.kind) ? card(m) : bubble(m));
  return item;
}

/** A template or subscribe message, a news or link card, a mini program card. */
function card(m) {
  const label = {
    template: "模板消息",
    subscribe: "订阅消息",
    news: "图文",
    link: "链接",
    miniprogram: "小程序",
  }[m.kind];
  const box = el("div", { class: "card" });
  box.append(el("div", { class: "card-label", text: label }));
  box.append(el("div", { class: "card-title", text: m.title }));
  for (const line of m.lines ?? []) {
    const detail = line === "详情 ›";
    box.append(el("div", { class: detail ? "card-more" : "card-line", text: line }));
  }
  return box;
}

/** Text, a menu, or a placeholder for media (`[图片]`, `[语音]`, …). */
function bubble(m) {
  const box = el("div", { class: "bubble" });
  if (m.title) box.append(el("div", { class: "bubble-title", text: m.title }));
  for (const line of m.lines ?? []) box.append(el("div", { class: "bubble-line", text: line }));
  if (m.options?.length) {
    const menu = el("ol", { class: "menu" });
    for (const option of m.options) menu.append(el("li", { text: option }));
    box.append(menu);
  }
  return box;
}
