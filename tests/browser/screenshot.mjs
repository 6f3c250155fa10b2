// The screenshot of docs/console.png (README.md shows it): a scene on a fresh
// `wxpush serve --sandbox` — two followers with a template, a text, a news card and a menu, one
// who left (a refused template), a batch of 12 — then the console, 1440×1100. Not a test:
//
//   bash -c '. scripts/browser-env && node tests/browser/screenshot.mjs docs/console.png'
import { launch } from "./harness.mjs";
import { startWxpush } from "./wxpush.mjs";
const OA = "wxd0000000000000a1";
const wx = await startWxpush();
const browser = await launch({ viewport: { width: 1440, height: 1100 } });
try {
  await wx.sandbox("/templates", { appid: OA, id: "TPL_ORDER", kind: "template", title: "订单发货通知",
    content: "订单号：{{character_string1.DATA}}\n商品：{{thing2.DATA}}\n快递：{{thing3.DATA}}" });
  for (const o of ["o_alice", "o_bob"]) await wx.sandbox(`/users/${o}/follow`, { appid: OA, unionid: `u_${o}` });
  await wx.sandbox("/users", [{ appid: OA, openid: "o_carol", subscribed: false }, ...Array.from({ length: 12 }, (_, i) => ({ appid: OA, openid: `o_fan${i}` }))]);
  const send = (b) => wx.api("POST", `/v1/apps/${OA}/messages`, b);
  await send({ type: "template", to: { openid: "o_alice" }, template_id: "TPL_ORDER",
    data: { character_string1: { value: "A1024" }, thing2: { value: "蓝牙耳机" }, thing3: { value: "顺丰 SF1234567" } } });
  await send({ type: "custom", to: { openid: "o_alice" }, msgtype: "text", text: { content: "您好，有问题随时回复我们。" } });
  await send({ type: "custom", to: { openid: "o_bob" }, msgtype: "news", news: { articles: [{ title: "秋季新品上市", description: "全场满 199 减 30", url: "https://example.com/a", picurl: "https://example.com/p.png" }] } });
  await send({ type: "custom", to: { openid: "o_bob" }, msgtype: "msgmenu", msgmenu: { head_content: "本次服务您满意吗？", list: [{ id: "1", content: "满意" }, { id: "2", content: "不满意" }], tail_content: "感谢您的评价" } });
  await send({ type: "template", to: { openid: "o_carol" }, template_id: "TPL_ORDER",
    data: { character_string1: { value: "A1025" }, thing2: { value: "充电器" }, thing3: { value: "-" } } });
  await wx.api("POST", `/v1/apps/${OA}/batches`, { message: { type: "template", template_id: "TPL_ORDER",
    data: { character_string1: { value: "B7" }, thing2: { value: "会员礼包" }, thing3: { value: "电子券" } } },
    recipients: Array.from({ length: 12 }, (_, i) => ({ openid: `o_fan${i}` })) });
  const page = await browser.open(wx.consoleUrl);
  await page.waitForText("100 %", { selector: "#batches", timeout: 20000 });
  await page.waitForText("delivered", { selector: "#messages" });
  await new Promise((r) => setTimeout(r, 1600));
  await page.screenshot(process.argv[2] ?? "target/browser/console.png");
  page.assertClean();
} finally {
  await browser.close();
  await wx.stop();
}
