// The emulator's users as phones (GET /sandbox/phones): one per user of the chosen app, with
// its follow state, customer-service window, accepted subscriptions and chat, and buttons
// for what the user does. Every button acts through the emulator's controls, so wxpush's
// callback receives exactly what WeChat would push.

import { query } from "./api.js";
import { chatItem } from "./chat.js";
import { button, drawPager, el, problem, replace, stamp } from "./dom.js";

const PAGE = 12;

/** What opened a customer-service allowance, as the chip names it. */
const OPENED_BY = { message: "消息", click: "菜单", follow: "关注", scan: "扫码" };

export class Phones {
  /** `root`: where the phones go; `say`: shows the outcome of an action. */
  constructor(root, api, say) {
    this.root = root;
    this.api = api;
    this.say = say;
    this.appid = null;
    /** The page's cursor (`null`: the first page) and the ones before it. */
    this.cursor = null;
    this.before = [];
    /** Rendered phones by appid/openid: { json, node }, reused while unchanged. */
    this.drawn = new Map();
    this.pager = el("nav", { class: "pager" });
    this.list = el("div", { class: "phones" });
    this.empty = el("p", { class: "hint", hidden: true });
    replace(root, this.empty, this.list, this.pager);
    /** The last page's phones and app, for the send form's choices. */
    this.lastPage = null;
  }

  show(appid) {
    if (appid === this.appid) return;
    this.appid = appid;
    this.cursor = null;
    this.before = [];
  }

  /** The control route of the page shown now. */
  path() {
    return `/phones${query({ appid: this.appid, limit: PAGE, cursor: this.cursor })}`;
  }

  async refresh() {
    if (!this.appid) return;
    const path = this.path();
    const answer = await this.api.sandbox(path);
    // Another app or page was chosen while this answer travelled: it is not these phones'.
    if (path !== this.path()) return;
    if (!answer.ok) {
      this.say(`phones: ${problem(answer)}`);
      return;
    }
    this.lastPage = answer.data;
    this.draw(answer.data);
  }

  draw(page) {
    const app = page.apps[0];
    const nodes = page.phones.map((phone, i) => {
      const key = `${phone.appid}/${phone.openid}`;
      const json = JSON.stringify([phone, app.templates]);
      let drawn = this.drawn.get(key);
      if (!drawn || drawn.json !== json) {
        drawn = { json, node: this.phone(phone, app) };
        this.drawn.set(key, drawn);
      }
      drawn.node.id = `phone-${i + 1}`;
      return drawn.node;
    });
    const same = nodes.length === this.list.children.length && nodes.every((n, i) => this.list.children[i] === n);
    if (!same) this.list.replaceChildren(...nodes);
    this.empty.hidden = nodes.length > 0;
    this.empty.textContent =
      app.kind === "official_account"
        ? "No users yet: add a follower above (as if someone followed the account)."
        : "No users yet: add a user above (as if someone opened the mini program).";
    drawPager(this.pager, this, page.next_cursor, () => this.refresh(), ["上一页", "下一页"]);
  }

  /** One phone: the user's status line, chat and buttons. */
  phone(p, app) {
    const official = app.kind === "official_account";
    const node = el("article", { class: "phone", dataset: { appid: p.appid, openid: p.openid } });
    node.append(
      el(
        "header",
        { class: "phone-top" },
        el("span", { class: "phone-app", text: official ? "公众号" : "小程序" }),
        el("span", { class: "phone-user", text: p.openid }),
      ),
    );
    node.append(this.status(p, official));
    const chat = el("ol", { class: "chat" });
    if (p.inbox.length === 0) chat.append(el("li", { class: "chat-empty", text: "暂无消息" }));
    for (const m of p.inbox) chat.append(chatItem(m));
    if (p.inbox_total > p.inbox.length) {
      chat.prepend(el("li", { class: "chat-more", text: `更早的 ${p.inbox_total - p.inbox.length} 条未显示` }));
    }
    node.append(chat);
    node.append(this.actions(p, app, official));
    return node;
  }

  status(p, official) {
    const chips = el("div", { class: "phone-status" });
    if (official) {
      chips.append(el("span", { class: p.following ? "chip ok" : "chip off", text: p.following ? "已关注" : "未关注" }));
    }
    // Each open allowance of the customer-service window, and what opened it.
    for (const w of p.service_window) {
      const by = OPENED_BY[w.opened_by] ?? w.opened_by;
      chips.append(el("span", { class: "chip", text: `客服窗口(${by}) 剩 ${w.replies_left} 条 · 至 ${stamp(w.closes_at)}` }));
    }
    if (p.service_window.length === 0) chips.append(el("span", { class: "chip off", text: "客服窗口 已关闭" }));
    for (const s of p.subscriptions) {
      const name = s.title ?? s.template_id;
      chips.append(el("span", { class: "chip", text: s.long_term ? `长期订阅 ${name}` : `订阅 ${name} ×${s.left}` }));
    }
    if (p.blocks_templates) chips.append(el("span", { class: "chip warn", text: "拒收模板消息" }));
    return chips;
  }

  actions(p, app, official) {
    const bar = el("footer", { class: "phone-actions" });
    const act = (label, path, body) =>
      button(label, async () => {
        const answer = await this.api.sandbox(path, body);
        this.say(answer.ok ? `${p.openid}: ${label}` : `${label}: ${problem(answer)}`);
        await this.refresh();
      });
    const user = encodeURIComponent(p.openid);
    if (official) {
      bar.append(
        p.following
          ? act("取消关注", `/users/${user}/unfollow`, { appid: p.appid })
          : act("关注", `/users/${user}/follow`, { appid: p.appid }),
      );
    }
    // What the user does in the chat: WeChat pushes it, and it opens the window.
    bar.append(act("发消息", `/users/${user}/message`, { appid: p.appid, content: "你好" }));
    if (official) bar.append(act("点菜单", `/users/${user}/click`, { appid: p.appid, key: "MENU_HELP" }));
    const subscribable = app.templates.filter((t) => t.kind !== "template");
    if (subscribable.length > 0) {
      const pick = el("select", { "aria-label": "subscribe template" });
      for (const t of subscribable) pick.append(el("option", { value: t.id, text: t.title || t.id }));
      bar.append(
        pick,
        button("接受订阅", async () => {
          const body = { appid: p.appid, openid: p.openid, template_id: pick.value };
          const answer = await this.api.sandbox("/grants", body);
          this.say(answer.ok ? `${p.openid}: 接受订阅 ${pick.value}` : `接受订阅: ${problem(answer)}`);
          await this.refresh();
        }),
      );
    }
    return bar;
  }
}
