// The console's remaining buttons in a real browser, each checked on both sides: what the
// phone shows (the emulator) and what wxpush recorded or answered: accept a subscription,
// inject a fault, invalidate the token, a batch naming one person twice, advance the clock.

import assert from "node:assert/strict";
import { test } from "node:test";
import { consoleFixture, DEMO_OA, phone } from "./wxpush.mjs";

const OA = DEMO_OA;

const fx = consoleFixture([
  { appid: OA, id: "SUB_WEEKLY", kind: "subscribe_once", title: "每周简报", content: "标题：{{thing1.DATA}}" },
  { appid: OA, id: "TPL_NOTICE", kind: "template", title: "服务通知", content: "内容：{{thing1.DATA}}" },
]);

async function send(body) {
  return fx.wxpush.api("POST", `/v1/apps/${OA}/messages`, body);
}

test("accept a subscription: the phone counts it, wxpush records the grant and spends it", async () => {
  await fx.wxpush.sandbox("/users/o_sub/follow", { appid: OA });
  const page = await fx.open();
  await page.waitForSelector(`${phone("o_sub")} select[aria-label="subscribe template"]`);
  await page.page.select(`${phone("o_sub")} select[aria-label="subscribe template"]`, "SUB_WEEKLY");
  await page.clickButton("接受订阅", { within: phone("o_sub") });
  await page.waitForText("订阅 每周简报 ×1", { selector: phone("o_sub") });
  // WeChat pushed the popup event; wxpush recorded it and knows the grant.
  await page.waitForText("subscribe_msg_popup_event", { selector: "#events" });
  let view;
  for (let i = 0; i < 50; i++) {
    view = await fx.wxpush.api("GET", `/v1/apps/${OA}/users/o_sub`);
    if (view.status === 200 && JSON.stringify(view.data).includes("SUB_WEEKLY")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(JSON.stringify(view.data).includes("SUB_WEEKLY"), JSON.stringify(view.data));
  // The grant is spent by a send that requires it: the phone shows the message, not the chip.
  const sent = await send({
    type: "oa_subscribe",
    to: { openid: "o_sub" },
    template_id: "SUB_WEEKLY",
    require_grant: true,
    page: "https://example.com/w",
    data: { thing1: { value: "第一期" } },
  });
  assert.equal(sent.status, 200, JSON.stringify(sent.data));
  await page.waitForText("标题：第一期", { selector: phone("o_sub") });
  // The used-up acceptance leaves the phone (no "×0").
  await page.page.waitForFunction(
    (sel) => !document.querySelector(sel)?.textContent.includes("订阅 每周简报"),
    { timeout: 5_000 },
    phone("o_sub"),
  );
  // A second one has no acceptance left: refused before WeChat.
  const again = await send({
    type: "oa_subscribe",
    to: { openid: "o_sub" },
    template_id: "SUB_WEEKLY",
    require_grant: true,
    page: "https://example.com/w",
    data: { thing1: { value: "第二期" } },
  });
  assert.equal(again.status, 409, JSON.stringify(again.data));
  assert.equal(again.data.error.code, "no_grant");
  page.assertClean();
});

test("inject a fault: the next send is refused with WeChat's errcode, the one after is delivered", async () => {
  await fx.wxpush.sandbox("/users/o_fault/follow", { appid: OA });
  const page = await fx.open();
  await page.page.select('#sandbox-tools select[aria-label="WeChat path"]', "/cgi-bin/message/template/send");
  // 43004 (the user does not follow): a refusal wxpush records as `failed`. (45009, the
  // quota, is answered 429 and not recorded: nothing was sent, the caller sends again later.)
  await page.page.select('#sandbox-tools select[aria-label="fault"]', "errcode 43004 (未关注)");
  await page.clickButton("注入故障", { within: "#sandbox-tools" });
  await page.waitForText("fault on the next /cgi-bin/message/template/send", { selector: "#status" });
  const message = { type: "template", to: { openid: "o_fault" }, template_id: "TPL_NOTICE", data: { thing1: { value: "一" } } };
  const failed = await send(message);
  assert.equal(failed.status, 403, JSON.stringify(failed.data));
  assert.equal(failed.data.error.code, "not_following", JSON.stringify(failed.data));
  // The refused message is recorded: the newest of the app's messages.
  const newest = await fx.wxpush.api("GET", `/v1/apps/${OA}/messages?limit=1`);
  const failedId = newest.data.messages[0].id;
  const row = `#messages tr[data-id="${failedId}"]`;
  await page.waitForText("failed", { selector: row });
  await page.waitForText("43004", { selector: row });
  const ok = await send({ ...message, data: { thing1: { value: "二" } } });
  assert.equal(ok.status, 200, JSON.stringify(ok.data));
  await page.waitForText("内容：二", { selector: phone("o_fault") });
  assert.ok(!(await page.text(phone("o_fault"))).includes("内容：一"), "the failed message reached the phone");
  page.assertClean();
});

test("invalidate the token: wxpush notices 40001, fetches a new one and the send succeeds", async () => {
  await fx.wxpush.sandbox("/users/o_token/follow", { appid: OA });
  const message = { type: "template", to: { openid: "o_token" }, template_id: "TPL_NOTICE", data: { thing1: { value: "甲" } } };
  assert.equal((await send(message)).status, 200);
  const before = await fx.wxpush.api("GET", `/v1/apps/${OA}/token`);
  const page = await fx.open();
  await page.waitForText("token valid for", { selector: "#app-state" });
  await page.clickButton("令牌失效", { within: "#sandbox-tools" });
  await page.waitForText("the app's token now answers 40001", { selector: "#status" });
  const sent = await send({ ...message, data: { thing1: { value: "乙" } } });
  assert.equal(sent.status, 200, JSON.stringify(sent.data));
  await page.waitForText("内容：乙", { selector: phone("o_token") });
  const after = await fx.wxpush.api("GET", `/v1/apps/${OA}/token`);
  assert.notEqual(after.data.access_token, before.data.access_token);
  page.assertClean();
});

test("a batch that names one person twice (openid and unionid) fills its bar when done", async () => {
  await fx.wxpush.sandbox("/users", { appid: OA, openid: "o_twice", unionid: "u_twice", subscribed: false });
  await fx.wxpush.sandbox("/users/o_twice/follow", { appid: OA });
  // wxpush learns the unionid from the follow (its look-up of the new follower).
  let known;
  for (let i = 0; i < 50; i++) {
    known = await fx.wxpush.api("GET", `/v1/apps/${OA}/users?unionid=u_twice`);
    if (known.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(known.status, 200, JSON.stringify(known.data));
  const page = await fx.open();
  const created = await fx.wxpush.api("POST", `/v1/apps/${OA}/batches`, {
    message: { type: "template", template_id: "TPL_NOTICE", data: { thing1: { value: "一次" } } },
    recipients: [{ openid: "o_twice" }, { unionid: "u_twice" }],
  });
  assert.equal(created.status, 202, JSON.stringify(created.data));
  const row = `#batches tr[data-id="${created.data.id}"]`;
  await page.waitForText("done", { selector: row, timeout: 20_000 });
  await page.waitForText("100 %", { selector: row });
  assert.match(await page.text(row), /sent 1 · failed 0 · unknown 0 of 2/);
  // One message on the phone.
  await page.waitForText("内容：一次", { selector: phone("o_twice") });
  const shown = await page.page.$$eval(`${phone("o_twice")} .chat-item`, (items) => items.length);
  assert.equal(shown, 1);
  page.assertClean();
});

// Last: the emulator's clock is then two days ahead of wxpush's, so the pushes it signs
// afterwards are outside wxpush's timestamp window (refused, as WeChat's would be).
test("advance the clock: the customer-service window the user opened closes", async () => {
  await fx.wxpush.sandbox("/users/o_clock/follow", { appid: OA });
  const page = await fx.open();
  await page.clickButton("发消息", { within: phone("o_clock") });
  await page.waitForText("客服窗口(消息) 剩 5 条", { selector: phone("o_clock") });
  await page.clickButton("时钟 +2 天", { within: "#sandbox-tools" });
  await page.waitForText("clock +48 h", { selector: "#status" });
  await page.waitForText("客服窗口 已关闭", { selector: phone("o_clock") });
  page.assertClean();
});
