// Shared setup of the scripted-API browser tests (storage, shares, vms .test.mjs): Debian's
// Chromium opens one page whose every request is answered by the test. `/` is a tiny page
// that imports one UI module from services/api/ui, `/ui/*` serves those files, the event
// stream delivers the events the test queued, and every other request goes to the test's
// handler (recorded in `api.calls`; no answer means 404).
//
// Environment: CHROMIUM (default /usr/bin/chromium), UI_RESULTS (screenshots; default
// <repo>/build/ui-results).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { checkA11y } from './axe.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const UI = path.resolve(here, '../ui');
export const RESULTS = process.env.UI_RESULTS || path.resolve(here, '../../../build/ui-results');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ORIGIN = 'https://cairn.test';
export const GiB = 1073741824;

/** A JSON reply of the scripted API (`v` undefined: an empty body). */
export const json = (status, v) => ({ status, body: v === undefined ? '' : JSON.stringify(v) });

/** The computed style `prop` of the element `loc` points at. */
export const style = (loc, prop) => loc.evaluate((el, p) => getComputedStyle(el)[p], prop);

/**
 * The API the page talks to. `handler({ method, path, body, b, query, raw }, api)` answers a
 * request (`body` the raw text, `b` it parsed, `{}` without one; `query` the URL's
 * URLSearchParams; an application/octet-stream body comes as the Buffer `raw` instead) with
 * `json(…)` (or `{ status, contentType, body }` for another type, or `{ abort: 'failed' }`
 * to break the connection; or a promise of one of these) or returns nothing for a 404. With `events` the
 * event stream delivers what `progress`/`send` queued (`retry: 100`, so EventSource
 * reconnects at once and picks up the next ones); without, it answers 204 (no events).
 */
export class ScriptedApi {
  constructor(handler, { events = false } = {}) {
    this.handler = handler;
    /** `METHOD /path[ body]` of every request the handler saw, in order. */
    this.calls = [];
    /** Tasks by id, as the handler made them. */
    this.tasks = {};
    /** Events the next event-stream connection delivers; null: no event stream. */
    this.events = events ? [] : null;
  }

  answer(method, url, body, raw = null) {
    const u = new URL(url);
    const p = u.pathname;
    if (raw) this.calls.push(`${method} ${p}${u.search} <${raw.length} bytes>`);
    else this.calls.push(`${method} ${p}${body ? ` ${body}` : ''}`);
    const b = body && !raw ? JSON.parse(body) : {};
    return this.handler({ method, path: p, body: raw ? null : body, b, query: u.searchParams, raw }, this)
      || json(404, { code: 'not_found', message: `no resource at ${p}` });
  }

  /** A new running task `id`, kept in `tasks`. */
  task(id, kind, message) {
    this.tasks[id] = { id, kind, state: 'running', progress: 0, message, created: 1, updated: 1 };
    return this.tasks[id];
  }

  /** Queue event `name` with `data` for the event stream. */
  send(name, data) {
    this.events.push(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Send task `id` with `progress` (and `state`, `message`) on the event stream. */
  progress(id, pct, st = 'running', message = this.tasks[id].message) {
    Object.assign(this.tasks[id], { progress: pct, state: st, message });
    this.send('task', this.tasks[id]);
  }
}

/**
 * Launch Chromium and open `/` on a page whose requests `api` answers. `script` is the body
 * of the page's module script (it renders into `<main id="m">`); `stylesheet` links
 * /ui/style.css (and gives main the UI's `main` class). `viewport` as for newPage.
 * Returns { browser, page }; page errors throw.
 */
export async function openScripted(api, { script, stylesheet = false, viewport } = {}) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage(viewport ? { viewport } : {});
  page.on('pageerror', (e) => { throw e; });
  const html = '<!doctype html><html lang="en"><title>Cairn UI test</title>'
    + (stylesheet ? '<link rel="stylesheet" href="/ui/style.css"><main id="m" class="main"></main>' : '<main id="m"></main>')
    + `<script type="module">${script}</script>`;
  await page.route('**/*', async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    if (url.pathname === '/') return route.fulfill({ contentType: 'text/html', body: html });
    if (url.pathname.startsWith('/ui/')) {
      const file = path.join(UI, path.basename(url.pathname));
      const type = file.endsWith('.css') ? 'text/css' : 'text/javascript';
      return route.fulfill({ contentType: type, body: fs.readFileSync(file, 'utf8') });
    }
    if (url.pathname === '/api/v1/events') {
      if (!api.events) return route.fulfill({ status: 204, body: '' });
      const body = `retry: 100\n\n${api.events.splice(0).join('')}`;
      return route.fulfill({ status: 200, contentType: 'text/event-stream', body });
    }
    const binary = (req.headers()['content-type'] || '').startsWith('application/octet-stream');
    // A handler may answer later (a promise): the page may have given up on it by then.
    const a = await (binary
      ? api.answer(req.method(), req.url(), null, req.postDataBuffer() || Buffer.alloc(0))
      : api.answer(req.method(), req.url(), req.postData()));
    if (a.abort) return route.abort(a.abort).catch(() => {});
    return route.fulfill({ status: a.status, contentType: a.contentType || 'application/json', body: a.body });
  });
  return { browser, page };
}

/**
 * `shot(name)`: checks the page with axe (serious or critical violations fail: axe.mjs), then
 * desktop (1280 × `height`) and 360 px phone screenshots of the whole page as
 * `<dir>/<prefix>-<name>.png` and `….phone.png`, then back to the desktop size. With
 * `fromTop` it scrolls to the top first (a full-page shot of a scrolled page paints a sticky
 * header mid-page).
 */
export function screenshots(getPage, { prefix, dir = RESULTS, height = 900, fromTop = false }) {
  return async (name) => {
    const page = getPage();
    fs.mkdirSync(dir, { recursive: true });
    if (fromTop) await page.evaluate(() => window.scrollTo(0, 0));
    await page.setViewportSize({ width: 1280, height });
    await checkA11y(page, `${prefix}-${name}`);
    await page.screenshot({ path: path.join(dir, `${prefix}-${name}.png`), fullPage: true });
    await page.setViewportSize({ width: 360, height: 780 });
    await page.screenshot({ path: path.join(dir, `${prefix}-${name}.phone.png`), fullPage: true });
    await page.setViewportSize({ width: 1280, height });
  };
}
