// The browser-test harness: headless Chromium (@sparticuz/chromium) driven by puppeteer-core,
// both installed by scripts/browser-env into .browser/. Run tests through scripts/browser-test,
// or after `. scripts/browser-env` with `node --test tests/browser/NAME.test.mjs`.
//
//   import { test, after } from "node:test";
//   import { launch } from "./harness.mjs";
//   const browser = await launch();
//   after(() => browser.close());
//   test("follow", async () => {
//     const page = await browser.open("http://127.0.0.1:PORT/console/");
//     await page.clickButton("关注");
//     await page.waitForText("已关注");
//     page.assertClean();            // no page error, console error, failed request or dialog
//   });
//
// Every wait is bounded (DEFAULT_TIMEOUT_MS unless given), and every browser this module
// launched is killed (its whole process group) when the process exits, however it exits.

import assert from "node:assert/strict";
import { mkdirSync, appendFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after } from "node:test";

export const DEFAULT_TIMEOUT_MS = 5_000;
const LAUNCH_TIMEOUT_MS = 30_000;
const NAVIGATION_TIMEOUT_MS = 15_000;
// A CDP call that hangs (a wedged renderer) fails after this instead of hanging the test.
const PROTOCOL_TIMEOUT_MS = 30_000;

const BROWSER_DIR = process.env.WXPUSH_BROWSER_DIR;
if (!BROWSER_DIR || !process.env.FONTCONFIG_FILE || !process.env.TMPDIR) {
  throw new Error(
    "the browser is not set up: run through scripts/browser-test, or `. scripts/browser-env` first",
  );
}
const require = createRequire(join(BROWSER_DIR, "package.json"));
const puppeteer = require("puppeteer-core");
const chromium = require("@sparticuz/chromium");

// @sparticuz/chromium's flags for a container (no sandbox, no zygote, single process, root)
// less the two that would make the page behave unlike a user's browser: with them, a console
// page could break its own CORS or mixed-content rules and still pass.
const UNSAFE_FLAGS = new Set(["--disable-web-security", "--allow-running-insecure-content"]);
// Nothing outside this machine is reachable: keep Chromium from trying.
const CLOSED_NETWORK_FLAGS = [
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

// The browsers this process launched (pid -> puppeteer Browser). A test that fails before its
// own `browser.close()` still has them closed: by the root `after` hook below when the tests
// end, by the signal handlers on SIGINT/SIGTERM/SIGHUP (a bounded run being stopped), and, as
// a last resort, killed on exit (the dead process is then reaped by init, not by node).
const launched = new Map();
function killAll() {
  for (const pid of launched.keys()) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
/** Kills every browser still open and waits (at most 2 s) until node has reaped them. */
async function killAllAndReap() {
  const exits = [...launched.values()].map((b) => {
    const proc = b.process();
    return proc && proc.exitCode === null && proc.signalCode === null
      ? new Promise((resolve) => proc.once("exit", resolve))
      : null;
  });
  killAll();
  await Promise.race([Promise.all(exits), sleep(2_000)]);
  launched.clear();
}
after(killAllAndReap);
process.on("exit", killAll);
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]]) {
  process.once(signal, () => killAllAndReap().finally(() => process.exit(code)));
}

/** Launches headless Chromium. Close it with `browser.close()` (e.g. in `after`). */
export async function launch({ viewport = { width: 1280, height: 800 } } = {}) {
  chromium.setGraphicsMode = false; // no WebGL: the pages under test draw with the DOM
  const args = puppeteer
    .defaultArgs({ args: chromium.args, headless: "shell" })
    .filter((a) => !UNSAFE_FLAGS.has(a))
    .concat(CLOSED_NETWORK_FLAGS);
  const libs = process.env.WXPUSH_CHROMIUM_LIBS;
  const env = { ...process.env };
  if (libs) env.LD_LIBRARY_PATH = libs + (env.LD_LIBRARY_PATH ? `:${env.LD_LIBRARY_PATH}` : "");
  const browser = await puppeteer.launch({
    executablePath: process.env.WXPUSH_CHROMIUM || (await chromium.executablePath()),
    headless: "shell",
    args,
    ignoreDefaultArgs: true, // `args` already holds puppeteer's defaults
    defaultViewport: { deviceScaleFactor: 1, ...viewport },
    env,
    timeout: LAUNCH_TIMEOUT_MS,
    protocolTimeout: PROTOCOL_TIMEOUT_MS,
    handleSIGINT: false, // handled above, for every browser at once
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const pid = browser.process()?.pid;
  if (pid) {
    launched.set(pid, browser);
    // scripts/browser-test kills what a killed test process could not.
    if (process.env.WXPUSH_BROWSER_PIDS) appendFileSync(process.env.WXPUSH_BROWSER_PIDS, `${pid}\n`);
  }
  const pages = new Set();
  return {
    puppeteer: browser,
    /** Opens a new tab at `url` (if given) and returns a Page (see below). */
    async open(url) {
      const page = await newPage(browser);
      pages.add(page);
      if (url) await page.goto(url);
      return page;
    },
    /** Closes every tab and the browser; kills it if it does not close within 5 s. */
    async close() {
      for (const page of pages) await page.close().catch(() => {});
      pages.clear();
      await Promise.race([browser.close().catch(() => {}), sleep(5_000)]);
      if (pid) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // closed
        }
        launched.delete(pid);
      }
    },
  };
}

async function newPage(browser) {
  const page = await browser.newPage();
  page.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT_MS);
  // What went wrong in the page, in the order it happened: `kind: text`.
  const problems = [];
  const dialogs = [];
  page.on("pageerror", (err) => problems.push(`pageerror: ${err?.message ?? err}`));
  page.on("error", (err) => problems.push(`crash: ${err?.message ?? err}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "assert") {
      const where = msg.location()?.url ? ` (${msg.location().url})` : "";
      problems.push(`console.${msg.type()}: ${msg.text()}${where}`);
    }
  });
  page.on("requestfailed", (req) =>
    problems.push(`requestfailed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`),
  );
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`http ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  // A dialog is recorded, counted as a problem, and dismissed so that it cannot block the page.
  page.on("dialog", async (dialog) => {
    dialogs.push({ type: dialog.type(), message: dialog.message() });
    problems.push(`dialog: ${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  return new Page(page, problems, dialogs);
}

export class Page {
  constructor(page, problems, dialogs) {
    /** The puppeteer Page, for anything this class does not cover. */
    this.page = page;
    /** Page errors, console errors, failed requests (and HTTP >= 400), dialogs and crashes. */
    this.problems = problems;
    /** Every dialog (alert, confirm, prompt, beforeunload) the page opened: {type, message}. */
    this.dialogs = dialogs;
  }

  async goto(url) {
    const res = await this.page.goto(url, { waitUntil: "load" });
    // (No response: about:blank, or a same-document navigation.)
    if (res && !res.ok()) throw new Error(`opening ${url}: HTTP ${res.status()}`);
    return res;
  }

  /** Fails, listing them, if the page has had any problem; `ignore` lists expected ones. */
  assertClean({ ignore = [] } = {}) {
    const left = this.problems.filter((p) => !ignore.some((re) => re.test(p)));
    assert.deepEqual(left, [], `problems in the page:\n  ${left.join("\n  ")}`);
  }

  /**
   * Waits (bounded) for a button whose text is exactly `text` (whitespace trimmed) to be
   * there and enabled, then clicks it as a person would (mouse at its centre). `within` is a
   * CSS selector that narrows the search, e.g. one phone.
   */
  async clickButton(text, { within = "body", timeout = DEFAULT_TIMEOUT_MS } = {}) {
    let handle;
    try {
      handle = await this.page.waitForFunction(
        (text, within) => {
          const root = document.querySelector(within);
          if (!root) return null;
          const all = root.querySelectorAll(
            'button, [role="button"], input[type="button"], input[type="submit"]',
          );
          for (const el of all) {
            const label = (el.value && el.tagName === "INPUT" ? el.value : el.textContent).trim();
            if (label.replace(/\s+/g, " ") === text && !el.disabled) return el;
          }
          return null;
        },
        { timeout },
        text,
        within,
      );
    } catch (err) {
      const buttons = await this.page
        .$$eval(`${within} button, ${within} [role="button"]`, (els) => els.map((e) => e.textContent.trim()))
        .catch(() => []);
      throw new Error(
        `no enabled button "${text}" in ${within} within ${timeout} ms; buttons: ${JSON.stringify(buttons)}`,
        { cause: err },
      );
    }
    const el = handle.asElement();
    await el.scrollIntoView();
    await el.click();
    await handle.dispose();
  }

  /** Waits (bounded) until the text of `selector` (default the body) contains `text`. */
  async waitForText(text, { selector = "body", timeout = DEFAULT_TIMEOUT_MS } = {}) {
    try {
      await this.page.waitForFunction(
        (text, selector) => document.querySelector(selector)?.textContent.includes(text) ?? false,
        { timeout },
        text,
        selector,
      );
    } catch (err) {
      const now = await this.text(selector).catch(() => "(not there)");
      throw new Error(
        `"${text}" did not appear in ${selector} within ${timeout} ms; it reads: ${JSON.stringify(now.slice(0, 500))}`,
        { cause: err },
      );
    }
  }

  /** Waits (bounded) for `selector` to match a visible element; returns its handle. */
  async waitForSelector(selector, { timeout = DEFAULT_TIMEOUT_MS, visible = true } = {}) {
    try {
      return await this.page.waitForSelector(selector, { timeout, visible });
    } catch (err) {
      throw new Error(`no ${visible ? "visible " : ""}${selector} within ${timeout} ms`, { cause: err });
    }
  }

  /** The text of the first element matching `selector`, whitespace trimmed. */
  async text(selector = "body") {
    const text = await this.page.$eval(selector, (el) => el.textContent).catch(() => null);
    if (text === null) throw new Error(`no ${selector} in the page`);
    return text.trim();
  }

  /**
   * The fonts Chromium drew `selector`'s own text with: [{family, glyphs}]. Text in a font
   * with no glyph for it (tofu boxes) shows here as a fallback family, or none.
   */
  async fontsUsed(selector) {
    const cdp = await this.page.createCDPSession();
    try {
      await cdp.send("DOM.enable");
      await cdp.send("CSS.enable");
      const { root } = await cdp.send("DOM.getDocument", { depth: -1 });
      const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector });
      if (!nodeId) throw new Error(`no ${selector} in the page`);
      const { fonts } = await cdp.send("CSS.getPlatformFontsForNode", { nodeId });
      return fonts.map((f) => ({ family: f.familyName, glyphs: f.glyphCount }));
    } finally {
      await cdp.detach().catch(() => {});
    }
  }

  /** Saves a PNG of the page (or of `selector`'s element) to `path`, making its folder. */
  async screenshot(path, { selector, fullPage = false } = {}) {
    mkdirSync(dirname(path), { recursive: true });
    if (selector) {
      const el = await this.waitForSelector(selector);
      await el.screenshot({ path });
    } else {
      await this.page.screenshot({ path, fullPage });
    }
    return path;
  }

  async close() {
    await this.page.close();
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
