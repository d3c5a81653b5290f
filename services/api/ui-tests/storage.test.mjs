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
import { GiB, json, openScripted, ORIGIN, screenshots, ScriptedApi, style } from './scripted-api.mjs';

let browser;
let page;

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
};

const api = new ScriptedApi(({ method, path: p, b }) => {
  if (p === '/api/v1/disks') return json(200, { disks: state.disks });
  if (p === '/api/v1/pools' && method === 'GET') return json(200, { pools: state.pool ? [state.pool] : [] });
  if (p === '/api/v1/disks/virtio-F/wipe') {
    if (b.confirm_serial !== 'F') return json(422, { code: 'invalid', message: 'type the serial', field: 'confirm_serial' });
    return json(202, api.task(3, 'disk.wipe', 'wiping virtio-F'));
  }
  if (p === '/api/v1/pools/tank/add/plan') {
    return json(200, { pool: 'tank', disk: b.disk, level_before: 'raid5', level: 'raid5', members: 4, usable_bytes_before: 2 * GiB, usable_bytes: 3 * GiB });
  }
  if (p === '/api/v1/pools/tank/add') return json(202, api.task(4, 'pool.add', `adding ${b.disk} to pool tank`));
  if (p === '/api/v1/pools/tank' && method === 'DELETE') {
    if (b.confirm_name !== 'tank') return json(422, { code: 'invalid', message: 'type the pool\'s name', field: 'confirm_name' });
    return json(202, api.task(5, 'pool.destroy', 'destroying pool tank'));
  }
  if (p === '/api/v1/pools/tank/shares') return json(200, []);
  if (p === '/api/v1/pools/tank/capacity') {
    return json(200, { pool: 'tank', data_percent: 12.5, metadata_percent: 2.0, size_bytes: 2 * GiB, provisioned_bytes: GiB, shares: [] });
  }
  if (p === '/api/v1/pools/tank/volumes') return json(200, []);
  if (p === '/api/v1/pools/tank/scrub') return json(200, { pool: 'tank', interval_days: 30, last: null });
  return undefined;
}, { events: true });
const { calls } = api;

const shot = screenshots(() => page, { prefix: 'storage' });

before(async () => {
  ({ browser, page } = await openScripted(api, {
    stylesheet: true,
    viewport: { width: 1280, height: 900 },
    script: 'import { renderStorage } from "/ui/storage.js"; import { connect } from "/ui/events.js";'
      + ' connect(); renderStorage(document.getElementById("m"));',
  }));
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
  api.progress(3, 100, 'succeeded', 'disk virtio-F wiped');
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
  api.progress(4, 45);
  await line.locator('.pct', { hasText: '45 %' }).waitFor();
  await shot('add-progress');
  api.progress(4, 100, 'succeeded', 'disk added');
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
