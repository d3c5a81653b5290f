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
    // Real drives (services/smart/tests/fixtures): an SSD 85 % worn, a Seagate asleep since
    // its last read, an SSD without a temperature sensor.
    disk('sda', 'BTWL1', 'boot', {
      id: 'ata-INTEL_SSDSC2BB016T4_BTWL1', bus: 'sata', size_bytes: 160041885696, model: 'INTEL SSDSC2BB016T4', boot: true,
      smart: { verdict: 'healthy', temperature_c: 23, endurance_used_pct: 85, reasons: [], checked_at: 1763870000, standby: false },
    }),
    disk('sdb', 'ZL2', 'in_use', {
      id: 'ata-ST16000NM001G_ZL2', bus: 'sata', size_bytes: 16000900661248, model: 'ST16000NM001G-2KK103', rotational: true, mounts: ['/srv/archive'],
      smart: {
        verdict: 'warning', temperature_c: 26, endurance_used_pct: null, reasons: ['12 command timeouts (attribute 188)'],
        checked_at: 1763860000, standby: true, standby_mode: 'STANDBY_Y',
      },
    }),
    disk('sdc', 'TS1', 'in_use', {
      id: 'ata-TS32GMTS400_TS1', bus: 'sata', size_bytes: 32017047552, model: 'TS32GMTS400', mounts: ['/srv/cache'],
      smart: { verdict: 'healthy', temperature_c: null, endurance_used_pct: 4, reasons: [], checked_at: 1763870000, standby: false },
    }),
  ],
  pool: {
    name: 'tank', level: 'raid5', state: 'healthy', reason: '', md_uuid: 'aa:bb', device: '/dev/md/tank',
    md: 'md127', volume_group: 'cairn-tank', size_bytes: 2 * GiB, sync: null, created: 1763870000,
    members: ['B', 'C', 'D'].map((s, i) => ({ disk: `virtio-${s}`, dev: `/dev/vd${'bcd'[i]}`, state: 'in_sync' })),
  },
};

// The SMART detail of the warm free disk: a finding, the attribute table, history and log.
const SMART_E = {
  id: 'virtio-E', bus: 'sata', verdict: 'warning', checked_at: 1763870000, standby: false,
  temperature_c: 58, temperature_limits: { warning_c: 55, critical_c: 65, source: 'default' },
  device: { model: 'QEMU HARDDISK', serial: 'E', firmware: '2.5+', protocol: 'ATA', device_type: 'sat', power_on_hours: 1234 },
  findings: [{ severity: 'warning', text: 'temperature 58 °C is above the warning limit 55 °C' }],
  reasons: ['temperature 58 °C'],
  attributes: [
    { id: 5, name: 'Reallocated_Sector_Ct', value: 100, worst: 100, thresh: 10, when_failed: '', prefailure: true, raw_value: '0', raw_string: '0' },
    { id: 194, name: 'Temperature_Celsius', value: 42, worst: 30, thresh: 0, when_failed: '', prefailure: false, raw_value: '58', raw_string: '58 (Min/Max 20/61)' },
  ],
  history: { polls: [50, 53, 55, 58].map((t, i) => ({ time: 1763860000 + i * 1800, temperature_c: t })) },
  self_tests: [{ kind: 'Short offline', result: 'passed', status: 'Completed without error', hours: 1200 }],
  self_test_remaining: null, next_short_test: null, next_long_test: null,
  settings: { polling: true, self_tests: true, temperature_warning_c: null, temperature_critical_c: null, short_test_days: 7, long_test_days: 30 },
};

const attr = (id, name, value, worst, thresh, raw, extra = {}) => ({
  id, name, value, worst, thresh, when_failed: '', prefailure: false, raw_value: String(raw.value), raw_string: raw.string, ...extra,
});
const SETTINGS = SMART_E.settings;
const detailOf = (d, extra) => ({
  id: d.id, dev: d.dev, bus: d.bus, model: d.model, serial: d.serial, ...d.smart,
  self_test_remaining: null, next_short_test: null, next_long_test: null, last_short_test: null, last_long_test: null,
  nvme: null, scsi: null, self_tests: [], messages: [], settings: SETTINGS, ...extra,
});
const SSD = state.disks.find((d) => d.serial === 'BTWL1');
const ASLEEP = state.disks.find((d) => d.serial === 'ZL2');
const SENSORLESS = state.disks.find((d) => d.serial === 'TS1');
const SMART_DETAIL = {
  [SSD.id]: detailOf(SSD, {
    class: 'ssd', findings: [],
    temperature_limits: { warning_c: 60, critical_c: 70, source: 'default' },
    endurance: { used_pct: 85, worn_out: false, source: 'attribute 233 Media_Wearout_Indicator' },
    device: { model: 'INTEL SSDSC2BB016T4', serial: 'BTWL1', firmware: 'D2010370', protocol: 'ATA', device_type: 'sat', rotation_rpm: 0, power_on_hours: 67329 },
    attributes: [
      attr(5, 'Reallocated_Sector_Ct', 100, 100, 0, { value: 0, string: '0' }),
      attr(194, 'Temperature_Internal', 100, 100, 0, { value: 23, string: '23' }),
      attr(233, 'Media_Wearout_Indicator', 15, 15, 0, { value: 0, string: '0' }),
    ],
    history: { polls: [22, 23, 23].map((t, i) => ({ time: 1763860000 + i * 1800, verdict: 'healthy', temperature_c: t })), daily: [], baseline: {} },
  }),
  [ASLEEP.id]: detailOf(ASLEEP, {
    class: 'hdd',
    findings: [{ severity: 'warning', code: 'command_timeouts', text: '12 command timeouts (attribute 188)' }],
    temperature_limits: { warning_c: 45, critical_c: 55, source: 'default' }, endurance: null,
    device: { model: 'ST16000NM001G-2KK103', serial: 'ZL2', firmware: 'SN03', protocol: 'ATA', device_type: 'sat', rotation_rpm: 7200, power_on_hours: 13114 },
    attributes: [
      attr(5, 'Reallocated_Sector_Ct', 100, 100, 10, { value: 0, string: '0' }, { prefailure: true }),
      attr(188, 'Command_Timeout', 100, 97, 0, { value: 51540393996, string: '51540393996' }, { count: '12' }),
    ],
    history: { polls: [{ time: 1763860000, verdict: 'warning', temperature_c: 26 }], daily: [], baseline: {} },
  }),
  [SENSORLESS.id]: detailOf(SENSORLESS, {
    class: 'ssd',
    findings: [{ severity: 'info', code: 'no_temperature', text: 'the drive reports 0 °C: it has no temperature sensor, so its temperature is not available' }],
    temperature_limits: { warning_c: 60, critical_c: 70, source: 'default' },
    endurance: { used_pct: 4, worn_out: false, source: 'attribute 169 Remaining_Lifetime_Perc' },
    device: { model: 'TS32GMTS400', serial: 'TS1', firmware: 'N1126I', protocol: 'ATA', device_type: 'sat', rotation_rpm: 0, power_on_hours: 796 },
    attributes: [attr(169, 'Remaining_Lifetime_Perc', 100, 100, 0, { value: 96, string: '96' })],
    history: { polls: [{ time: 1763870000, verdict: 'healthy' }], daily: [], baseline: {} },
  }),
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
  if (p === '/api/v1/smart/virtio-E') return json(200, SMART_E);
  const id = decodeURIComponent(p.replace('/api/v1/smart/', ''));
  if (p.startsWith('/api/v1/smart/') && SMART_DETAIL[id]) return json(200, SMART_DETAIL[id]);
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

test('a disk\'s SMART detail shows its finding, attributes, history and settings', async () => {
  await page.locator('[data-disk="virtio-E"] button', { hasText: 'SMART' }).click();
  const detail = page.locator('[data-smart="virtio-E"]');
  await detail.waitFor();
  assert.match(await detail.textContent(), /Temperature 58 °C is above the warning limit 55 °C\./);
  assert.match(await detail.locator('table').first().textContent(), /Reallocated Sector Ct/);
  await detail.locator('summary', { hasText: 'Settings for this disk' }).click();
  await detail.getByLabel('Warning at (°C)').waitFor();
  await shot('smart');
  await detail.locator('summary', { hasText: 'Settings for this disk' }).click();
});

test('SSD wear, a sleeping disk and a drive without a temperature sensor', async () => {
  const row = (d) => page.locator(`[data-disk="${d.id}"]`);
  assert.match(await row(SSD).locator('.smart').textContent(), /^Healthy 23 °C · 85 % worn$/);
  assert.match(await row(ASLEEP).locator('.smart').textContent(), /^Warning 26 °C · asleep$/);
  assert.match(await row(SENSORLESS).locator('.smart').textContent(), /^Healthy · 4 % worn$/);
  const open = async (d) => {
    await row(d).locator('button', { hasText: 'SMART' }).click();
    const detail = page.locator(`[data-smart="${d.id}"]`);
    await detail.waitFor();
    return detail;
  };
  const value = (detail, label) => detail.locator('.kv', { has: page.locator('dt', { hasText: label }) }).locator('dd').textContent();

  let detail = await open(SSD);
  assert.equal(await value(detail, 'Endurance used'), '85 % · from attribute 233 Media Wearout Indicator');
  assert.equal(await value(detail, 'Temperature'), '23 °C');
  assert.equal(await detail.locator('.smart-standby').count(), 0);
  await shot('smart-ssd');

  detail = await open(ASLEEP);
  const notice = await detail.locator('.smart-standby').textContent();
  const read = await page.evaluate((t) => new Date(t * 1000).toLocaleString(), ASLEEP.smart.checked_at);
  assert.equal(notice, `Asleep (standby) — last read at ${read}. The disk was in STANDBY_Y mode at the last poll,`
    + ' which does not wake it: the verdict and data are from that read.');
  assert.equal(await detail.locator('.kv dt', { hasText: 'Endurance used' }).count(), 0, 'a hard disk has no endurance');
  const a188 = detail.locator('tbody tr', { hasText: 'Command Timeout' });
  assert.match(await a188.locator('td.mono').textContent(), /^51540393996 · count 12$/);
  assert.equal(await a188.getAttribute('class'), 'row-warning');
  const a5 = detail.locator('tbody tr', { hasText: 'Reallocated Sector Ct' });
  assert.equal(await a5.locator('td.mono').textContent(), '0', 'no count where the raw value is the count');
  await shot('smart-standby');

  detail = await open(SENSORLESS);
  assert.equal(await value(detail, 'Temperature'), 'not available');
  assert.equal(await value(detail, 'Endurance used'), '4 % · from attribute 169 Remaining Lifetime Perc');
  assert.match(await detail.textContent(), /No temperature history: the drive has no temperature sensor\./);
  await shot('smart-no-sensor');
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
