// Browser test of the Disks & pools page on a booted lab node (set up through the API by
// qemu-test/tests/ui.rs, scenario ui_storage): signs in, checks that every data disk is
// listed with its serial and the AHCI and NVMe disks with a SMART verdict, creates a raid1
// pool through the page's form (the usable capacity shown before confirming, nothing created
// until then), follows the pool task's progress to the end, creates a share in the pool, and
// keeps desktop and 360 px phone screenshots of each step.
//
// Environment (required): CAIRN_URL (https://127.0.0.1:PORT), CAIRN_PASSWORD (the admin
// password the lab set), CAIRN_SERIALS (the data disks' serials, comma-separated),
// CAIRN_SMART_SERIALS (those with SMART: the AHCI and NVMe disks), CAIRN_POOL_SERIALS (the
// two disks to mirror). Optional: CHROMIUM, UI_RESULTS (default <repo>/build/ui-results/lab).

import assert from 'node:assert/strict';
import { BASE, labBrowser, RESULTS } from './lab-node.mjs';
import { screenshots } from './scripted-api.mjs';

const PASSWORD = process.env.CAIRN_PASSWORD;
const list = (v) => (v || '').split(',').map((s) => s.trim()).filter(Boolean);
const SERIALS = list(process.env.CAIRN_SERIALS);
const SMART_SERIALS = list(process.env.CAIRN_SMART_SERIALS);
const POOL_SERIALS = list(process.env.CAIRN_POOL_SERIALS);
// A raid1 resync of two small disks takes a minute or two under TCG.
const POOL_MS = 300000;

let page;
/** Every progress value the pool task line showed. */
const progressSeen = new Set();

const { step, heading, pageErrors } = labBrowser({
  profile: 'cairn-ui-lab-storage',
  check: () => {
    assert.ok(BASE && PASSWORD, 'set CAIRN_URL and CAIRN_PASSWORD (the lab test does)');
    assert.ok(SERIALS.length >= 2 && POOL_SERIALS.length === 2, 'set CAIRN_SERIALS and CAIRN_POOL_SERIALS');
  },
  opened: (p) => { page = p; },
  failedShot: (name) => `storage-FAILED-${name.replace(/[^a-z]+/gi, '-')}.png`,
});

/** Desktop and phone screenshots of the whole page, from its top. */
const shot = screenshots(() => page, { prefix: 'storage', dir: RESULTS, height: 820, fromTop: true });

const diskRow = (serial) => page.locator('[data-disk]', { hasText: `serial ${serial} ` });
const apiGet = (p) => page.evaluate(async (u) => (await fetch(u)).json(), p);

step('signing in opens the Disks & pools page', async () => {
  await page.goto(`${BASE}/#/storage`);
  await heading('Sign in').waitFor();
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await heading('Disks & pools').waitFor();
});

step('every data disk is listed with its serial; the AHCI and NVMe disks with a SMART verdict', async () => {
  for (const serial of SERIALS) {
    const row = diskRow(serial);
    await row.waitFor();
    assert.match(await row.textContent(), /Free/, `disk ${serial} is not free`);
  }
  for (const serial of SMART_SERIALS) {
    const verdict = diskRow(serial).locator('.smart .badge');
    await verdict.waitFor();
    const text = (await verdict.textContent()).trim();
    assert.ok(['Healthy', 'Warning', 'Failing'].includes(text), `SMART verdict of ${serial}: ${text}`);
  }
  await shot('lab-disks');
});

step('the pool form shows the usable capacity before anything is created', async () => {
  await page.getByRole('button', { name: 'Create pool', exact: true }).first().click();
  const form = page.locator('form', { has: page.getByRole('heading', { name: 'Create a pool' }) });
  await form.waitFor();
  await form.getByLabel('Name').fill('tank');
  await form.getByLabel('Redundancy').selectOption('raid1');
  for (const serial of POOL_SERIALS) {
    await form.locator('label.check', { hasText: serial }).locator('input').check();
  }
  await form.getByRole('button', { name: 'Show capacity' }).click();
  const notice = form.locator('.notice');
  await notice.waitFor({ state: 'visible' });
  const text = await notice.textContent();
  assert.match(text, /^2 disks, [\d.]+ MiB raw → about [\d.]+ MiB usable; survives 1 disk failure\./, text);
  const pools = await apiGet('/api/v1/pools');
  assert.deepEqual(pools.pools, [], 'a pool exists before confirming');
  await shot('lab-create-plan');
  await form.getByRole('button', { name: 'Create pool', exact: true }).click();
});

step('the pool task shows its progress until it ends; the pool becomes healthy', async () => {
  const line = page.locator('.task-inline');
  await line.waitFor();
  const pct = line.locator('.pct');
  const deadline = Date.now() + POOL_MS;
  for (;;) {
    const t = (await pct.textContent().catch(() => '')).trim();
    if (t) progressSeen.add(t);
    if (t === '100 %') break;
    assert.ok(!(await line.locator('.form-error').count()), `the pool task failed: ${await line.textContent()}`);
    assert.ok(Date.now() < deadline, `the pool task did not end within ${POOL_MS / 1000} s; last ${t}`);
    await page.waitForTimeout(250);
  }
  assert.equal(await line.locator('.form-error').count(), 0, `the pool task failed: ${await line.textContent()}`);
  await shot('lab-create-done');
  const row = page.locator('[data-pool="tank"]');
  await row.waitFor();
  assert.match(await row.textContent(), /tank · raid1 · [\d.]+ MiB/);
  await page.waitForFunction(() => /Healthy/.test(document.querySelector('[data-pool="tank"]')?.textContent || '')
    && !document.querySelector('[data-pool="tank"] .task-progress'), null, { timeout: POOL_MS });
  for (const serial of POOL_SERIALS) {
    assert.match(await diskRow(serial).textContent(), /member of pool tank/);
  }
  console.log(`pool task progress seen: ${[...progressSeen].join(', ')}`);
});

step('a share is created in the pool', async () => {
  await page.locator('[data-pool="tank"] button', { hasText: 'Details' }).click();
  const shares = page.locator('[data-pool-shares="tank"]');
  await shares.waitFor();
  const form = shares.locator('form', { hasText: 'New share' });
  await form.getByLabel('Name').fill('docs');
  await form.getByLabel('Size (GiB)').fill('0.25');
  await form.getByRole('button', { name: 'Create share' }).click();
  const row = shares.locator('[data-share="docs"]');
  await row.waitFor();
  assert.doesNotMatch(await row.textContent(), /not mounted/);
  assert.match(await row.textContent(), /mounted/);
  assert.match(await row.textContent(), /of 256\.0 MiB · \/var\/lib\/cairn\/shares\/tank\/docs/);
  // The pool's capacity line counts the new share's thin volume.
  await shares.locator('.capacity', { hasText: '256.0 MiB provisioned' }).waitFor();
  await shot('lab-share');
  assert.deepEqual(pageErrors, []);
});
