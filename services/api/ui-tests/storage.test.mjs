// Browser test of storage.js (with style.css and shares.js): renders the Disks & pools page in
// Debian's Chromium against a scripted API (requests answered by the test, task progress sent
// on the event stream), checks that the page's classes are styled, the typed-serial wipe, the
// add-disk capacity shown before confirming, the typed-name destroy, and keeps desktop and
// 360 px phone screenshots.
//
// Run: cd services/api/ui-tests && node --test storage.test.mjs   (CHROMIUM overrides the
// browser, UI_RESULTS the screenshot folder; default <repo>/build/ui-results)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const UI = path.resolve(here, '../ui');
const RESULTS = process.env.UI_RESULTS || path.resolve(here, '../../../build/ui-results');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ORIGIN = 'https://cairn.test';
const GiB = 1073741824;

let browser;
let page;
const calls = [];
/** Events the next event-stream connection delivers (EventSource reconnects after 100 ms). */
const events = [];

const disk = (name, serial, usage, extra = {}) => ({
  id: `virtio-${serial}`, name, dev: `/dev/${name}`, by_id: `/dev/disk/by-id/virtio-${serial}`,
  wwn: null, serial, model: 'QEMU disk', size_bytes: GiB, bus: 'virtio', rotational: false,
  removable: false, partitions: [], signatures: [], holders: [], mounts: [], boot: false,
  usage, pool: usage === 'pool' ? 'tank' : null,
  smart: { verdict: 'healthy', temperature_c: 31, reasons: [] }, ...extra,
});

const state = {
  disks: [
    disk('vdb', 'B', 'pool'), disk('vdc', 'C', 'pool'), disk('vdd', 'D', 'pool'),
    disk('vde', 'E', 'free', { smart: { verdict: 'warning', temperature_c: 58, reasons: ['temperature 58 °C'] } }),
    disk('vdf', 'F', 'has_data', { signatures: ['ext4'], smart: null }),
  ],
  pool: {
    name: 'tank', level: 'raid5', state: 'healthy', reason: '', md_uuid: 'aa:bb', device: '/dev/md/tank',
    md: 'md127', volume_group: 'cairn-tank', size_bytes: 2 * GiB, sync: null, created: 1763870000,
    members: ['B', 'C', 'D'].map((s, i) => ({ disk: `virtio-${s}`, dev: `/dev/vd${'bcd'[i]}`, state: 'in_sync' })),
  },
  tasks: {},
};

function task(id, kind, message) {
  state.tasks[id] = { id, kind, state: 'running', progress: 0, message, created: 1, updated: 1 };
  return state.tasks[id];
}

function answer(method, url, body) {
  const p = new URL(url).pathname;
  calls.push(`${method} ${p}${body ? ` ${body}` : ''}`);
  const json = (status, v) => ({ status, body: v === undefined ? '' : JSON.stringify(v) });
  const b = body ? JSON.parse(body) : {};
  if (p === '/api/v1/disks') return json(200, { disks: state.disks });
  if (p === '/api/v1/pools' && method === 'GET') return json(200, { pools: state.pool ? [state.pool] : [] });
  if (p === '/api/v1/disks/virtio-F/wipe') {
    if (b.confirm_serial !== 'F') return json(422, { code: 'invalid', message: 'type the serial', field: 'confirm_serial' });
    return json(202, task(3, 'disk.wipe', 'wiping virtio-F'));
  }
  if (p === '/api/v1/pools/tank/add/plan') {
    return json(200, { pool: 'tank', disk: b.disk, level_before: 'raid5', level: 'raid5', members: 4, usable_bytes_before: 2 * GiB, usable_bytes: 3 * GiB });
  }
  if (p === '/api/v1/pools/tank/add') return json(202, task(4, 'pool.add', `adding ${b.disk} to pool tank`));
  if (p === '/api/v1/pools/tank' && method === 'DELETE') {
    if (b.confirm_name !== 'tank') return json(422, { code: 'invalid', message: 'type the pool\'s name', field: 'confirm_name' });
    return json(202, task(5, 'pool.destroy', 'destroying pool tank'));
  }
  if (p === '/api/v1/pools/tank/shares') return json(200, []);
  if (p === '/api/v1/pools/tank/capacity') {
    return json(200, { pool: 'tank', data_percent: 12.5, metadata_percent: 2.0, size_bytes: 2 * GiB, provisioned_bytes: GiB, shares: [] });
  }
  if (p === '/api/v1/pools/tank/volumes') return json(200, []);
  if (p === '/api/v1/pools/tank/scrub') return json(200, { pool: 'tank', interval_days: 30, last: null });
  return json(404, { code: 'not_found', message: `no resource at ${p}` });
}

/** Send task `id` with `progress` (and `state`) on the event stream. */
function progress(id, pct, st = 'running', message = state.tasks[id].message) {
  Object.assign(state.tasks[id], { progress: pct, state: st, message });
  events.push(`event: task\ndata: ${JSON.stringify(state.tasks[id])}\n\n`);
}

async function shot(name) {
  fs.mkdirSync(RESULTS, { recursive: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: path.join(RESULTS, `storage-${name}.png`), fullPage: true });
  await page.setViewportSize({ width: 360, height: 780 });
  await page.screenshot({ path: path.join(RESULTS, `storage-${name}.phone.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
}

const style = (loc, prop) => loc.evaluate((el, p) => getComputedStyle(el)[p], prop);

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => { throw e; });
  await page.route('**/*', async (route) => {
    const req = route.request();
    const url = new URL(req.url());
    if (url.pathname === '/') {
      return route.fulfill({
        contentType: 'text/html',
        body: '<!doctype html><link rel="stylesheet" href="/ui/style.css"><main id="m" class="main"></main>'
          + '<script type="module">import { renderStorage } from "/ui/storage.js"; import { connect } from "/ui/events.js";'
          + ' connect(); renderStorage(document.getElementById("m"));</script>',
      });
    }
    if (url.pathname.startsWith('/ui/')) {
      const file = path.join(UI, path.basename(url.pathname));
      const type = file.endsWith('.css') ? 'text/css' : 'text/javascript';
      return route.fulfill({ contentType: type, body: fs.readFileSync(file, 'utf8') });
    }
    if (url.pathname === '/api/v1/events') {
      const body = `retry: 100\n\n${events.splice(0).join('')}`;
      return route.fulfill({ status: 200, contentType: 'text/event-stream', body });
    }
    const a = answer(req.method(), req.url(), req.postData());
    return route.fulfill({ status: a.status, contentType: 'application/json', body: a.body });
  });
  await page.goto(`${ORIGIN}/`);
});

after(async () => {
  await browser?.close();
});

test('disks show usage, SMART and temperature, styled like the rest of the UI', async () => {
  const free = page.locator('[data-disk="virtio-E"]');
  await free.waitFor();
  assert.match(await free.textContent(), /Free/);
  assert.match(await free.textContent(), /Warning 58 °C/);
  // (a flex item's inline-flex computes to flex)
  assert.equal(await style(free.locator('.smart'), 'display'), 'flex');
  assert.equal(await style(free.locator('.smart'), 'whiteSpace'), 'nowrap');
  assert.equal(await style(free.locator('.row-actions'), 'display'), 'flex');
  assert.match(await page.locator('[data-disk="virtio-F"]').textContent(), /Has data.*ext4.*SMART —/s);
  assert.match(await page.locator('[data-pool="tank"]').textContent(), /tank · raid5 · 2\.0 GiB.*3 disks, all in sync/s);
  await shot('disks');
});

test('a wipe needs the typed serial and follows its task', async () => {
  const row = page.locator('[data-disk="virtio-F"]');
  await row.locator('button', { hasText: 'Wipe' }).click();
  const form = row.locator('form.confirm');
  await form.waitFor();
  // The confirm card is marked as dangerous, its button red.
  assert.equal(await style(form, 'borderLeftColor'), 'rgb(168, 35, 27)');
  const submit = form.locator('button[type=submit]');
  assert.equal(await style(submit, 'backgroundColor'), 'rgb(168, 35, 27)');
  await form.locator('input[name=confirm_serial]').fill('G');
  assert.equal(await submit.isDisabled(), true);
  await form.locator('input[name=confirm_serial]').fill('F');
  assert.equal(await submit.isDisabled(), false);
  await shot('wipe-confirm');
  await submit.click();
  const line = row.locator('.task-inline');
  await line.waitFor();
  assert.equal(await style(line, 'display'), 'flex');
  assert.ok(calls.includes('POST /api/v1/disks/virtio-F/wipe {"confirm_serial":"F"}'), calls.join('\n'));
  // The end of the task reloads the page's disks.
  const loads = () => calls.filter((c) => c === 'GET /api/v1/disks').length;
  const before = loads();
  progress(3, 100, 'succeeded', 'disk virtio-F wiped');
  await page.waitForFunction(() => !document.querySelector('[data-disk="virtio-F"] .task-inline'));
  assert.ok(loads() > before, 'the disks were reloaded');
});

test('adding a disk shows the capacity first, then runs as a task with progress', async () => {
  await page.locator('[data-pool="tank"] button', { hasText: 'Details' }).click();
  const detail = page.locator('[data-pool-detail="tank"]');
  await detail.waitFor();
  await detail.locator('button', { hasText: 'Add disk' }).click();
  const form = detail.locator('form', { hasText: 'Add a disk to tank' });
  await form.locator('select[name=disk]').selectOption('virtio-E');
  await form.locator('button[type=submit]', { hasText: 'Show capacity' }).click();
  const notice = form.locator('.notice');
  await notice.waitFor({ state: 'visible' });
  assert.match(await notice.textContent(), /raid5 on 4 disks: about 2\.0 GiB usable now → about 3\.0 GiB after/);
  assert.ok(!calls.some((c) => c.startsWith('POST /api/v1/pools/tank/add ')), 'nothing added before confirming');
  await shot('add-plan');
  await form.locator('button[type=submit]', { hasText: 'Add and grow' }).click();
  const line = detail.locator('.task-inline');
  await line.waitFor();
  assert.ok(calls.includes('POST /api/v1/pools/tank/add {"disk":"virtio-E"}'), calls.join('\n'));
  progress(4, 45);
  await line.locator('.pct', { hasText: '45 %' }).waitFor();
  await shot('add-progress');
  progress(4, 100, 'succeeded', 'disk added');
  // The end of the task reloads the pool (its detail is drawn again without the task line).
  await page.waitForFunction(() => !document.querySelector('[data-pool-detail="tank"] .task-inline'));
});

test('destroy needs the pool name typed', async () => {
  const detail = page.locator('[data-pool-detail="tank"]');
  await detail.locator('button', { hasText: 'Destroy' }).click();
  const form = detail.locator('form.confirm');
  await form.waitFor();
  const submit = form.locator('button[type=submit]');
  await form.locator('input[name=confirm_name]').fill('tnak');
  assert.equal(await submit.isDisabled(), true);
  await form.locator('input[name=confirm_name]').fill('tank');
  await shot('destroy-confirm');
  await submit.click();
  await detail.locator('.task-inline').waitFor();
  assert.ok(calls.includes('DELETE /api/v1/pools/tank {"confirm_name":"tank"}'), calls.join('\n'));
});
