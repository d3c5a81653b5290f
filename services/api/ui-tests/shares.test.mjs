// Browser test of shares.js: renders a pool's shares in Debian's Chromium against a scripted
// API (requests answered by the test), and checks usage bars, field errors from a 422, the
// typed-name delete, restore and scrub following their tasks to the end.
//
// Run: cd services/api/ui-tests && node --test shares.test.mjs   (CHROMIUM overrides the browser)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkA11y } from './axe.mjs';
import { json, openScripted, ORIGIN, ScriptedApi } from './scripted-api.mjs';

let browser;
let page;

const share = (name, pct, extra = {}) => ({
  pool: 'tank', name, size_bytes: 1073741824, created: 1, schedule: { hourly: 0, daily: 0, weekly: 0 },
  mountpoint: `/var/lib/cairn/shares/tank/${name}`, mounted: true,
  usage: { size_bytes: 1073741824, used_bytes: Math.round(1073741824 * pct / 100), free_bytes: 1 },
  used_percent: pct, ...extra,
});

const state = {
  shares: [share('docs', 91.5), share('media', 10)],
};

const api = new ScriptedApi(({ method, path: p, b }, { tasks }) => {
  if (p === '/api/v1/pools/tank/shares' && method === 'GET') return json(200, state.shares);
  if (p === '/api/v1/pools/tank/shares' && method === 'POST') {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(b.name)) {
      return json(422, { code: 'invalid', message: 'must start with a lowercase letter or a digit', field: 'name' });
    }
    state.shares.push(share(b.name, 0));
    return json(201, state.shares.at(-1));
  }
  if (p === '/api/v1/pools/tank/shares/media' && method === 'DELETE') {
    if (b.confirm !== 'media') {
      return json(422, { code: 'invalid', message: 'type the share\'s name to confirm', field: 'confirm' });
    }
    state.shares = state.shares.filter((s) => s.name !== 'media');
    return json(204);
  }
  if (p === '/api/v1/pools/tank/capacity') {
    return json(200, { pool: 'tank', data_percent: 42.0, metadata_percent: 3.5, size_bytes: 3221225472, provisioned_bytes: 2147483648, shares: [] });
  }
  if (p === '/api/v1/pools/tank/volumes') {
    return json(200, [{ pool: 'tank', name: 'base', path: '/dev/cairn-tank/vol-base', size_bytes: 67108864, used_bytes: 0, origin: null, active: true }]);
  }
  if (p === '/api/v1/pools/tank/scrub' && method === 'GET') return json(200, { pool: 'tank', interval_days: 30, last: null });
  if (p === '/api/v1/pools/tank/scrub' && method === 'POST') {
    tasks[7] = { id: 7, kind: 'pool.scrub', state: 'succeeded', progress: 100, message: 'scrub of pool tank done: 0 mismatched sector(s)', created: 1, updated: 2 };
    return json(202, { ...tasks[7], state: 'running', progress: 0, message: 'scrubbing pool tank' });
  }
  if (p === '/api/v1/pools/tank/shares/docs/snapshots' && method === 'GET') {
    return json(200, [{ pool: 'tank', share: 'docs', name: 'v1', path: '/x', created: '2026-11-23 03:00:00', scheduled: false }]);
  }
  if (p === '/api/v1/pools/tank/shares/docs/snapshots/v1/restore') {
    tasks[8] = { id: 8, kind: 'share.restore', state: 'succeeded', progress: 100, message: 'share docs-old restored from docs@v1', created: 1, updated: 2 };
    state.shares.push(share('docs-old', 5, { restored_from: 'docs@v1' }));
    return json(202, { ...tasks[8], state: 'running', progress: 5 });
  }
  const t = p.match(/^\/api\/v1\/tasks\/(\d+)$/);
  if (t) return json(200, tasks[t[1]]);
  return undefined;
});
const { calls } = api;

before(async () => {
  ({ browser, page } = await openScripted(api, {
    script: 'import { renderPoolShares } from "/ui/shares.js"; renderPoolShares(document.getElementById("m"), "tank");',
    stylesheet: true,
  }));
  page.on('dialog', async (d) => {
    if (d.type() === 'prompt') await d.accept(d.message().includes('media') ? 'media' : 'x');
    else await d.accept();
  });
  await page.goto(`${ORIGIN}/`);
});

after(async () => {
  await browser?.close();
});

test('shares show usage against the alert thresholds', async () => {
  const docs = page.locator('[data-share="docs"]');
  await docs.waitFor();
  assert.match(await docs.textContent(), /937\.0 MiB used of 1\.0 GiB/);
  assert.equal(await docs.locator('[role=progressbar]').getAttribute('aria-valuenow'), '91.5');
  assert.equal(await docs.locator('.bar-fill').getAttribute('class'), 'bar-fill bar-critical');
  assert.equal(await page.locator('[data-share="media"] .bar-fill').getAttribute('class'), 'bar-fill bar-ok');
  assert.match(await page.locator('.capacity').textContent(), /data 42\.0 %/);
  assert.match(await page.locator('[data-volume="base"]').textContent(), /64\.0 MiB/);
  await checkA11y(page, 'shares');
});

test('a refused name is shown at the name field, a good one creates the share', async () => {
  const form = page.locator('form', { hasText: 'New share' });
  await form.locator('input[name=name]').fill('Bad Name');
  await form.locator('button[type=submit]').click();
  const err = form.locator('[data-field="name"] .field-error');
  await err.waitFor({ state: 'visible' });
  assert.equal(await err.textContent(), 'Must start with a lowercase letter or a digit.');
  await form.locator('input[name=name]').fill('photos');
  await form.locator('button[type=submit]').click();
  await page.locator('[data-share="photos"]').waitFor();
  assert.ok(calls.includes('POST /api/v1/pools/tank/shares {"name":"photos","size_bytes":10737418240}'), calls.join('\n'));
});

test('delete asks for the typed name', async () => {
  await page.locator('[data-share="media"] button', { hasText: 'Delete' }).click();
  await page.locator('[data-share="media"]').waitFor({ state: 'detached' });
  assert.ok(calls.includes('DELETE /api/v1/pools/tank/shares/media {"confirm":"media"}'), calls.join('\n'));
});

test('restore and scrub follow their tasks to the end', async () => {
  await page.locator('[data-share="docs"] button', { hasText: 'Snapshots' }).click();
  const row = page.locator('[data-snapshot="v1"]');
  await row.waitFor();
  await row.locator('input').fill('docs-old');
  await row.locator('button', { hasText: 'Restore' }).click();
  await page.locator('.snapshots .task-slot', { hasText: 'restored from docs@v1' }).waitFor();
  await page.locator('[data-share="docs-old"]', { hasText: 'restored from docs@v1' }).waitFor();
  await page.locator('button', { hasText: 'Scrub now' }).click();
  const slot = page.locator('.task-slot', { hasText: 'scrub of pool tank done' });
  await slot.waitFor();
  assert.equal(await slot.locator('[role=progressbar]').getAttribute('aria-valuenow'), '100');
  await checkA11y(page, 'shares-after-scrub');
});
