// A real `wxpush serve --sandbox` for the browser tests: the built binary (WXPUSH_BIN, else
// target/debug/wxpush), started in a fresh folder on a free port with no WXPUSH_API_KEY, as a
// newcomer starts it, so it generates a key and prints the console link. Stopped (its whole
// process group) by `stop()` or when the test process exits.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { launch } from "./harness.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = process.env.WXPUSH_BIN || join(ROOT, "target", "debug", "wxpush");
const START_TIMEOUT_MS = 20_000;

const running = new Set();
process.on("exit", () => {
  for (const child of running) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/**
 * Starts `wxpush serve --sandbox` with `args` added; resolves to { url, consoleUrl, key,
 * output(), api(method, path, body), sandbox(path, body), stop() } once it printed its
 * console link.
 */
export async function startWxpush(args = []) {
  if (!existsSync(BIN)) throw new Error(`no wxpush binary at ${BIN}: cargo build -p wxpush-cli --bin wxpush`);
  const dir = mkdtempSync(join(tmpdir(), "wxpush-console-"));
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  delete env.WXPUSH_API_KEY;
  delete env.WECHAT_API_BASE;
  const child = spawn(BIN, ["serve", "--sandbox", "--port", "0", ...args], {
    cwd: dir,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const link = await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`wxpush did not start within ${START_TIMEOUT_MS} ms:\n${out}`)), START_TIMEOUT_MS);
    const look = () => {
      const found = /console: (http:\/\/\S+\/console\/#key=(\S+))/.exec(out);
      if (found) {
        clearTimeout(timer);
        done(found);
      }
    };
    child.stdout.on("data", look);
    child.once("exit", (code) => fail(new Error(`wxpush exited (${code}):\n${out}`)));
  });
  const consoleUrl = link[1];
  const key = link[2];
  const url = consoleUrl.replace(/\/console\/#.*$/, "");
  const call = async (method, path, body, headers = {}) => {
    const res = await fetch(url + path, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
    return { status: res.status, data, headers: res.headers };
  };
  return {
    url,
    consoleUrl,
    key,
    output: () => out,
    /** A /v1 call with the bearer key. */
    api: (method, path, body) => call(method, path, body, { Authorization: `Bearer ${key}` }),
    /** A /sandbox control: GET without a body, else POST of JSON; fails unless 2xx. */
    sandbox: async (path, body) => {
      const r = await call(body === undefined ? "GET" : "POST", `/sandbox${path}`, body);
      if (r.status >= 300) throw new Error(`/sandbox${path}: ${r.status} ${JSON.stringify(r.data)}`);
      return r.data;
    },
    fetch: call,
    async stop() {
      running.delete(child);
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // gone
      }
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The demo official account of `serve --sandbox`. */
export const DEMO_OA = "wxd0000000000000a1";

/** The CSS selector of `openid`'s phone. */
export const phone = (openid) => `.phone[data-openid="${openid}"]`;

/**
 * What a file of console tests shares: before its tests a fresh `wxpush serve --sandbox`
 * (`fx.wxpush`) with `templates` added to the emulator, and a browser (`fx.browser`); both
 * stopped after them. `fx.open()` opens the console at the printed link.
 */
export function consoleFixture(templates = []) {
  const fx = {};
  before(async () => {
    [fx.wxpush, fx.browser] = await Promise.all([startWxpush(), launch({ viewport: { width: 1400, height: 900 } })]);
    for (const t of templates) await fx.wxpush.sandbox("/templates", t);
  });
  after(async () => {
    await fx.browser?.close();
    await fx.wxpush?.stop();
  });
  fx.open = async () => {
    const page = await fx.browser.open(fx.wxpush.consoleUrl);
    await page.waitForSelector("#messages");
    return page;
  };
  return fx;
}
