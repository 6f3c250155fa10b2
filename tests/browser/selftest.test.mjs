// Proves the harness on a static page (tests/browser/fixture/) served on 127.0.0.1: Chinese
// text in a real font, a click, text that stays text, and that the harness does report a
// page that throws, logs an error, fails a request or opens a dialog.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { launch } from "./harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURE = join(HERE, "fixture");
const SHOTS = join(HERE, "..", "..", "target", "browser");
const TYPES = { html: "text/html; charset=utf-8", js: "text/javascript", css: "text/css" };
// The CSP the console will have: no inline script, nothing from elsewhere.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:";

/** Serves the fixture files on a free 127.0.0.1 port; unsafe.html and its script without CSP. */
function serveFixture() {
  const server = createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.slice(1) || "index.html";
    let body;
    try {
      if (!/^[a-z]+\.(html|js|css)$/.test(name) || !statSync(join(FIXTURE, name)).isFile()) throw 0;
      body = readFileSync(join(FIXTURE, name));
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const headers = { "content-type": TYPES[name.split(".").pop()], "cache-control": "no-store" };
    if (!name.startsWith("unsafe")) headers["content-security-policy"] = CSP;
    res.writeHead(200, headers).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}/`,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

let fixture;
let browser;
before(async () => {
  fixture = await serveFixture();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await fixture?.close();
});

test("Chinese text is drawn in Noto Sans SC, not tofu", { timeout: 30_000 }, async () => {
  const page = await browser.open(fixture.url);
  assert.equal(await page.text("#greeting"), "你好，世界！模板消息已送达");
  // Every glyph of the heading from the Chinese font; none from a fallback.
  assert.deepEqual(await page.fontsUsed("#greeting"), [{ family: "Noto Sans SC", glyphs: 13 }]);
  const png = await page.screenshot(join(SHOTS, "selftest-chinese.png"));
  assert.ok(readFileSync(png).subarray(1, 4).toString() === "PNG");
  page.assertClean();
});

test("a click on a button, found by its text, changes the page", { timeout: 30_000 }, async () => {
  const page = await browser.open(fixture.url);
  assert.equal(await page.text("#status"), "未点击");
  await page.clickButton("点我");
  await page.waitForText("已点击", { selector: "#status" });
  page.assertClean();
});

test("a hostile message set with textContent shows as text and runs nothing", { timeout: 30_000 }, async () => {
  const page = await browser.open(fixture.url);
  await page.waitForText("<img", { selector: "#hostile" });
  assert.equal(await page.text("#hostile"), "<img src=x onerror=alert(1)>");
  assert.equal(await page.page.$$eval("#hostile *", (els) => els.length), 0);
  // Give an onerror handler, had one been made, time to fire.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(page.dialogs, []);
  page.assertClean();
});

test("negative: a page error, a console error and a failed request are all reported", { timeout: 30_000 }, async () => {
  const page = await browser.open(`${fixture.url}throws.html`);
  await waitFor(() => page.problems.length >= 3);
  const has = (re) => page.problems.some((p) => re.test(p));
  assert.ok(has(/^pageerror: .*fixture: a deliberate page error/), page.problems.join("\n"));
  assert.ok(has(/^console\.error: fixture: a deliberate console error/), page.problems.join("\n"));
  assert.ok(has(/^http 404: GET .*\/missing\.json$/), page.problems.join("\n"));
  assert.throws(() => page.assertClean(), /deliberate page error/);
  // And expected problems can be let through by name.
  page.assertClean({ ignore: [/deliberate/, /missing\.json/] });
});

test("negative: hostile HTML set with innerHTML opens a dialog, and it is reported", { timeout: 30_000 }, async () => {
  const page = await browser.open(`${fixture.url}unsafe.html`);
  await waitFor(() => page.dialogs.length > 0);
  assert.deepEqual(page.dialogs, [{ type: "alert", message: "1" }]);
  assert.throws(() => page.assertClean(), /dialog: alert: 1/);
});

test("negative: waits are bounded and say what they saw", { timeout: 30_000 }, async () => {
  const page = await browser.open(fixture.url);
  const started = Date.now();
  await assert.rejects(page.clickButton("不存在", { timeout: 300 }), /no enabled button "不存在".*"点我"/);
  await assert.rejects(page.waitForText("永远不会", { timeout: 300 }), /did not appear in body/);
  assert.ok(Date.now() - started < 5_000);
  page.assertClean();
});

/** Polls `cond` every 20 ms for at most `ms`. */
async function waitFor(cond, ms = 5_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
