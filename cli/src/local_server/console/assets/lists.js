// A list of the chosen app, newest first, a page at a time: messages, batches or events
// (GET /v1/apps/{appid}/messages|batches|events). Polling redraws it only when the page
// changed; Older and Newer move through the pages.

import { query } from "./api.js";
import { drawPager, el, problem, replace } from "./dom.js";

const PAGE = 20;

export class PagedList {
  /**
   * `what`: the route's last segment and the answer's array (`messages`, ...); `columns`:
   * the headings; `row(item)`: one `tr`; `empty`: what an empty list says.
   */
  constructor(root, api, say, { what, columns, row, empty }) {
    Object.assign(this, { api, say, what, row, empty });
    this.columns = columns.length;
    this.appid = null;
    this.cursor = null;
    this.before = [];
    this.json = "";
    this.body = el("tbody");
    this.table = el(
      "table",
      { class: "list", id: what },
      el("thead", {}, el("tr", {}, columns.map((h) => el("th", { text: h })))),
      this.body,
    );
    this.pager = el("nav", { class: "pager" });
    replace(root, this.table, this.pager);
  }

  show(appid) {
    if (appid === this.appid) return;
    this.appid = appid;
    this.cursor = null;
    this.before = [];
    this.json = "";
  }

  /** The route of the page shown now. */
  path() {
    return `/v1/apps/${this.appid}/${this.what}${query({ limit: PAGE, cursor: this.cursor })}`;
  }

  async refresh() {
    const path = this.path();
    const answer = await this.api.get(path);
    // Another app or page was chosen while this answer travelled: it is not this list's.
    if (path !== this.path()) return;
    if (!answer.ok) {
      this.say(`${this.what}: ${problem(answer)}`);
      return;
    }
    const json = JSON.stringify(answer.data);
    if (json === this.json) return;
    this.json = json;
    const rows = answer.data[this.what].map(this.row);
    if (rows.length === 0) {
      rows.push(el("tr", {}, el("td", { colspan: this.columns, class: "hint", text: this.empty })));
    }
    this.body.replaceChildren(...rows);
    drawPager(this.pager, this, answer.data.next_cursor, () => this.refresh(), ["Newer", "Older"]);
  }
}
