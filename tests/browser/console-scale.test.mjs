// The console over 100 000 messages (WXPUSH_CONSOLE_MESSAGES=N to resize): the store is
// seeded as sends write it (target/debug/seed_messages), `wxpush serve --sandbox --data FILE`
// serves it, and the page shows its first page of messages, and pages down, quickly: every
// list is paged, so nothing reads all the messages.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { launch } from "./harness.mjs";
import { startWxpush } from "./wxpush.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SEED = process.env.WXPUSH_SEED_BIN || join(ROOT, "target", "debug", "seed_messages");
const COUNT = Number(process.env.WXPUSH_CONSOLE_MESSAGES || 100_000);
const OA = "wxd0000000000000a1";
// Bounds for a debug build on a busy 2-core machine; the measured times are printed.
const FIRST_PAGE_MS = 5_000;
const OLDER_PAGE_MS = 3_000;

let dir;
let wxpush;
let browser;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "wxpush-scale-"));
  const data = join(dir, "wxpush.redb");
  execFileSync(SEED, [data, OA, String(COUNT)], { stdio: "ignore", timeout: 120_000 });
  [wxpush, browser] = await Promise.all([startWxpush(["--data", data]), launch()]);
});
after(async () => {
  await browser?.close();
  await wxpush?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Waits for the messages table to show 20 rows whose first is not `notFirst`. */
async function twentyRows(page, notFirst) {
  await page.page.waitForFunction(
    (notFirst) => {
      const rows = document.querySelectorAll("#messages tbody tr[data-id]");
      return rows.length === 20 && rows[0].dataset.id !== notFirst;
    },
    { timeout: 30_000 },
    notFirst ?? "",
  );
  return page.page.$eval("#messages tbody tr[data-id]", (r) => r.dataset.id);
}

test(`the console opens and pages through ${COUNT} messages`, { timeout: 180_000 }, async (t) => {
  const page = await browser.open("about:blank");
  const started = Date.now();
  await page.goto(wxpush.consoleUrl);
  const first = await twentyRows(page);
  const firstMs = Date.now() - started;
  t.diagnostic(`first page of messages shown ${firstMs} ms after navigation (${COUNT} messages)`);
  // The newest message of the seed is first.
  assert.match(first, /^msg_[0-9a-f]{12}0*[0-9a-f]+$/);
  assert.equal(parseInt(first.slice(16), 16), COUNT - 1);

  const olderStarted = Date.now();
  await page.clickButton("Older", { within: "#messages-box" });
  const second = await twentyRows(page, first);
  const olderMs = Date.now() - olderStarted;
  t.diagnostic(`an older page shown ${olderMs} ms after the click`);
  assert.equal(parseInt(second.slice(16), 16), COUNT - 21);
  assert.ok(firstMs < FIRST_PAGE_MS, `first page took ${firstMs} ms`);
  assert.ok(olderMs < OLDER_PAGE_MS, `an older page took ${olderMs} ms`);
  page.assertClean();
});
