// The console (`/console/`) in a real browser against a real `wxpush serve --sandbox`, driven
// as a person would: open the printed link, follow with the button, watch a template sent
// through the API arrive on the phone in Chinese, send from the form, and see hostile
// message data shown as text. No page error, console error, failed request or dialog.

import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { consoleFixture, DEMO_OA, phone } from "./wxpush.mjs";

const OA = DEMO_OA;
const SHOTS = join(import.meta.dirname ?? ".", "..", "..", "target", "browser");

const fx = consoleFixture([
  {
    appid: OA,
    id: "TPL_ORDER",
    kind: "template",
    title: "订单发货通知",
    content: "订单号：{{character_string1.DATA}}\n商品：{{thing2.DATA}}\n{{remark.DATA}}",
  },
]);

async function send(body) {
  const answer = await fx.wxpush.api("POST", `/v1/apps/${OA}/messages`, body);
  assert.equal(answer.status, 200, JSON.stringify(answer.data));
  return answer.data;
}

test("the printed link opens the console, and the key leaves the address bar", async () => {
  const page = await fx.open();
  const where = await page.page.evaluate(() => ({ hash: location.hash, href: location.href }));
  assert.equal(where.hash, "");
  assert.ok(!where.href.includes(fx.wxpush.key));
  const kept = await page.page.evaluate(() => sessionStorage.getItem("wxpush.console.key"));
  assert.equal(kept, fx.wxpush.key);
  await page.waitForText("公众号 wxd0000000000000a1", { selector: "#apps" });
  await page.waitForText("no token yet", { selector: "#app-state" });
  page.assertClean();
});

test("follow with the button: the phone shows it and wxpush records the follower", async () => {
  await fx.wxpush.sandbox("/users", { appid: OA, openid: "o_bob", unionid: "u_bob", subscribed: false });
  const page = await fx.open();
  await page.waitForText("未关注", { selector: phone("o_bob") });
  await page.clickButton("关注", { within: phone("o_bob") });
  await page.waitForText("已关注", { selector: phone("o_bob") });
  // WeChat's `subscribe` push reached wxpush's callback: the follower and its unionid.
  let user;
  for (let i = 0; i < 50; i++) {
    user = await fx.wxpush.api("GET", `/v1/apps/${OA}/users?unionid=u_bob`);
    if (user.status === 200 && user.data.accounts[0].subscribed === true) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(user.status, 200, JSON.stringify(user.data));
  assert.deepEqual(user.data.accounts, [{ appid: OA, openid: "o_bob", subscribed: true }]);
  // …and the console lists the recorded push (no --forward: its forwarding is off).
  await page.waitForText("subscribe", { selector: "#events" });
  const row = await page.text("#events tbody tr");
  assert.match(row, /subscribe\s*o_bob\s*off/);
  await page.clickButton("取消关注", { within: phone("o_bob") });
  await page.waitForText("未关注", { selector: phone("o_bob") });
  page.assertClean();
});

test("a template sent through the API arrives on the phone, rendered in Chinese", async () => {
  await fx.wxpush.sandbox("/users/o_alice/follow", { appid: OA });
  const page = await fx.open();
  const sent = await send({
    type: "template",
    to: { openid: "o_alice" },
    template_id: "TPL_ORDER",
    data: { character_string1: { value: "A1024" }, thing2: { value: "蓝牙耳机" } },
  });
  await page.waitForText("订单发货通知", { selector: phone("o_alice") });
  await page.waitForText("商品：蓝牙耳机", { selector: phone("o_alice") });
  await page.waitForText("订单号：A1024", { selector: phone("o_alice") });
  const title = `${phone("o_alice")} .card-title`;
  assert.deepEqual(await page.fontsUsed(title), [{ family: "Noto Sans SC", glyphs: 6 }]);
  // wxpush's side: the message, and WeChat's delivery report moving it to `delivered`.
  await page.waitForText(sent.id.slice(-8), { selector: "#messages" });
  await page.waitForText("delivered", { selector: `#messages tr[data-id="${sent.id}"]` });
  await page.screenshot(join(SHOTS, "console-template.png"));
  page.assertClean();
});

test("the send form sends a first message without any JSON", async () => {
  await fx.wxpush.sandbox("/users/o_carol/follow", { appid: OA });
  const page = await fx.open();
  await page.waitForSelector(phone("o_carol"));
  const form = page.page;
  await form.$eval('#send-form input[aria-label="to (openid)"]', (i) => (i.value = ""));
  await form.type('#send-form input[aria-label="to (openid)"]', "o_carol");
  await form.select('#send-form select[aria-label="message type"]', "custom");
  await form.$eval('#send-form input[aria-label="text"]', (i) => (i.value = ""));
  await form.type('#send-form input[aria-label="text"]', "欢迎关注");
  await page.clickButton("Send", { within: "#send-form" });
  await page.waitForText(": sent", { selector: "#send-form" });
  await page.waitForText("欢迎关注", { selector: phone("o_carol") });
  page.assertClean();
});

test("hostile message data is shown as text and runs nothing", async () => {
  await fx.wxpush.sandbox("/users/o_mallory/follow", { appid: OA });
  const page = await fx.open();
  const hostile = "<img src=x onerror=alert(1)>";
  // A template field holds at most 20 characters: the shortest hostile markup fits.
  await send({
    type: "template",
    to: { openid: "o_mallory" },
    template_id: "TPL_ORDER",
    data: { character_string1: { value: "<svg onload=alert()>" }, thing2: { value: "x" }, remark: { value: hostile } },
  });
  await send({ type: "custom", to: { openid: "o_mallory" }, msgtype: "text", text: { content: hostile } });
  await page.waitForText(hostile, { selector: phone("o_mallory") });
  await page.waitForText("订单号：<svg onload=alert()>", { selector: phone("o_mallory") });
  const made = await page.page.$$eval("#main img, #main svg, #main script, #main iframe", (els) => els.length);
  assert.equal(made, 0, "no element made from message data");
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(page.dialogs, []);
  page.assertClean();
});

test("a user's message and menu click reach wxpush, and open the window", async () => {
  await fx.wxpush.sandbox("/users", { appid: OA, openid: "o_dave" });
  const page = await fx.open();
  await page.waitForText("客服窗口 已关闭", { selector: phone("o_dave") });
  await page.clickButton("发消息", { within: phone("o_dave") });
  await page.waitForText("客服窗口(消息) 剩 5 条", { selector: phone("o_dave") });
  await page.clickButton("点菜单", { within: phone("o_dave") });
  await page.waitForText("客服窗口(菜单) 剩 3 条", { selector: phone("o_dave") });
  // WeChat pushed both to wxpush's callback: the events list shows them, newest first.
  await page.waitForText("CLICK", { selector: "#events" });
  const rows = await page.page.$$eval("#events tbody tr", (trs) => trs.slice(0, 2).map((tr) => tr.textContent));
  assert.match(rows[0], /CLICK\s*o_dave/);
  assert.match(rows[1], /text\s*o_dave/);
  page.assertClean();
});

test("block a template: WeChat intercepts it, and the message is marked blocked", async () => {
  await fx.wxpush.sandbox("/templates", { appid: OA, id: "TPL_PROMO", kind: "template", title: "活动提醒", content: "活动：{{thing1.DATA}}" });
  await fx.wxpush.sandbox("/users/o_erin/follow", { appid: OA });
  const page = await fx.open();
  await page.waitForSelector('select[aria-label="template to block"] option[value="TPL_PROMO"]', { visible: false });
  await page.page.select('select[aria-label="template to block"]', "TPL_PROMO");
  await page.clickButton("拦截模板", { within: "#sandbox-tools" });
  await page.waitForText("WeChat intercepts TPL_PROMO", { selector: "#status" });
  const sent = await send({ type: "template", to: { openid: "o_erin" }, template_id: "TPL_PROMO", data: { thing1: { value: "双十一" } } });
  const row = `#messages tr[data-id="${sent.id}"]`;
  await page.waitForText("sent", { selector: row });
  await page.clickButton("Intercepted?", { within: "#app-state" });
  await page.waitForText("intercepted: 活动提醒 1", { selector: "#app-state" });
  await page.waitForText("blocked", { selector: row });
  // Never delivered: the phone has no message.
  assert.equal(await page.text(`${phone("o_erin")} .chat`), "暂无消息");
  page.assertClean();
});

test("no response the page reads holds an access token", async () => {
  const page = await fx.browser.open("about:blank");
  const bodies = [];
  page.page.on("response", async (res) => {
    if (res.url().startsWith(fx.wxpush.url)) bodies.push(await res.text().catch(() => ""));
  });
  // A token exists: wxpush fetched one for the sends above.
  const token = await fx.wxpush.api("GET", `/v1/apps/${OA}/token`);
  assert.equal(token.status, 200);
  await page.goto(fx.wxpush.consoleUrl);
  await page.waitForText("token valid for", { selector: "#app-state" });
  await page.waitForSelector(".phone");
  assert.ok(bodies.length >= 5, `${bodies.length} responses`);
  for (const body of bodies) assert.ok(!body.includes(token.data.access_token), "a token reached the page");
  page.assertClean();
});

// Last: its 40 users fill the first pages of phones.
test("a batch's bar fills to 100 % as its workers send", async () => {
  const users = Array.from({ length: 40 }, (_, i) => ({ appid: OA, openid: `o_fan${i}` }));
  await fx.wxpush.sandbox("/users", users);
  const page = await fx.open();
  const created = await fx.wxpush.api("POST", `/v1/apps/${OA}/batches`, {
    message: { type: "template", template_id: "TPL_ORDER", data: { character_string1: { value: "B7" }, thing2: { value: "秋季新品" } } },
    recipients: users.map((u) => ({ openid: u.openid })),
  });
  assert.equal(created.status, 202, JSON.stringify(created.data));
  const row = `#batches tr[data-id="${created.data.id}"]`;
  await page.waitForSelector(row);
  await page.waitForText("100 %", { selector: row, timeout: 20_000 });
  assert.equal(await page.page.$eval(`${row} progress`, (p) => p.value), 100);
  assert.match(await page.text(row), /done.*sent 40 · failed 0 · unknown 0 of 40/);
  // The batch's messages are in the list too.
  await page.waitForText(created.data.id.slice(-8), { selector: "#messages" });
  page.assertClean();
});

test("a batch held back before WeChat (no grant) still fills its bar", async () => {
  const users = Array.from({ length: 3 }, (_, i) => ({ appid: OA, openid: `o_nogrant${i}` }));
  await fx.wxpush.sandbox("/users", users);
  const page = await fx.open();
  const created = await fx.wxpush.api("POST", `/v1/apps/${OA}/batches`, {
    message: { type: "oa_subscribe", template_id: "SUB_NEWS", require_grant: true, page: "https://example.com/n", data: { thing1: { value: "周报" } } },
    recipients: users.map((u) => ({ openid: u.openid })),
  });
  assert.equal(created.status, 202, JSON.stringify(created.data));
  const row = `#batches tr[data-id="${created.data.id}"]`;
  await page.waitForSelector(row);
  await page.waitForText("100 %", { selector: row, timeout: 20_000 });
  assert.match(await page.text(row), /no grant 3 of 3/);
  page.assertClean();
});
