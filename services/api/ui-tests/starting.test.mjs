// Browser test of the shell while cairnd's domains start (decision 0023): the status strip
// names the domains still starting and goes away once health says they are ready; a view
// whose request answered 503 `starting` says which domain is starting and loads by itself
// when it is ready; a failed domain stays shown with its reason. Scripted API, Debian's
// Chromium, axe on each state.
//
// Run: cd services/api/ui-tests && node --test starting.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { json, openScripted, screenshots, ScriptedApi } from './scripted-api.mjs';

let browser;
let page;

const BOOT = { slot: 'a', entry: 'cairn-a.conf', blessed: true, failed_attempts: [], stage1_failures: [] };
// What health says: the test moves it on.
const domains = {
  storage: { state: 'starting' },
  smart: { state: 'starting' },
  network: { state: 'ready', took_ms: 40 },
  vms: { state: 'starting' },
};
const ready = () => Object.values(domains).every((d) => d.state !== 'starting');
let witness = false;
const health = () => ({
  status: 'ok', version: '0.1.0', hostname: 'cairn-test', uptime_s: 12, boot: BOOT,
  ready: ready(), domains, witness,
});

const api = new ScriptedApi(({ method, path }) => {
  if (method !== 'GET') return undefined;
  if (path === '/api/v1/health') return json(200, health());
  if (path === '/api/v1/alerts') return json(200, { active: [], recent: [] });
  if (path === '/api/v1/tasks') return json(200, { tasks: [] });
  if (path === '/api/v1/cluster') {
    return json(200, { mode: 'standalone', this_node: 'cairn-test', cluster: null, quorum: null, nodes: [], failover: null });
  }
  if (path === '/api/v1/network/status') return json(200, { links: [], routes: [] });
  if (path === '/api/v1/disks' || path === '/api/v1/pools') {
    if (domains.storage.state === 'starting') {
      return {
        status: 503,
        body: JSON.stringify({
          code: 'starting',
          message: 'the storage service is still starting on this node; try again in a moment',
          field: null,
        }),
      };
    }
    return json(200, path === '/api/v1/disks' ? { disks: [] } : { pools: [] });
  }
  return undefined;
});

const shot = screenshots(() => page, { prefix: 'starting' });

before(async () => {
  ({ browser, page } = await openScripted(api, {
    stylesheet: true,
    script: 'import { renderShell } from "/ui/shell.js"; import { api } from "/ui/api.js";'
      + 'window.location.hash = "#/storage";'
      + 'const health = await api("GET", "/api/v1/health");'
      + 'window.shell = renderShell(document.body, { health, me: { user: "admin", csrf_token: "t" }, onSignedOut() {} });',
  }));
  await page.goto('https://cairn.test/');
});

after(async () => {
  if (browser) await browser.close();
});

test('the strip names the domains starting and the view waits for storage', async () => {
  const strip = page.locator('.domains-strip');
  await strip.getByText('Starting: storage, SMART, VMs…').waitFor();
  assert.equal(await strip.getAttribute('role'), 'status');
  assert.equal(await strip.getAttribute('aria-live'), 'polite');
  const msg = page.locator('#main .form-error');
  await msg.waitFor();
  assert.match(await msg.textContent(), /^Storage is still starting\. This page loads by itself/);
  await shot('starting');

  // Storage and SMART come up, VMs fail: the view loads by itself, the strip shows the
  // failure and stops saying "Starting".
  domains.storage = { state: 'ready', took_ms: 4100 };
  domains.smart = { state: 'ready', took_ms: 4300 };
  domains.vms = { state: 'failed', took_ms: 90, reason: 'cannot connect to libvirt' };
  await page.waitForFunction(() => !document.querySelector('#main .form-error'));
  await page.getByRole('heading', { name: 'Pools', exact: true }).waitFor();
  assert.ok(api.calls.filter((c) => c === 'GET /api/v1/disks').length >= 2, 'the view asked again');
  const failed = strip.locator('.form-error');
  await failed.waitFor();
  assert.equal(await failed.textContent(), 'VMs failed to start: cannot connect to libvirt');
  assert.equal(await strip.locator('.notice').count(), 0);
  await shot('failed');

  // The failure stays (health keeps saying so); nothing is polled for starting any more.
  const polls = api.calls.filter((c) => c === 'GET /api/v1/health').length;
  assert.ok(polls >= 2, `health polled while starting (${polls})`);
  assert.equal(await failed.isVisible(), true);
});

test('with every domain ready or absent the strip is empty and takes no space', async () => {
  domains.vms = { state: 'absent', reason: 'libvirtd is not installed on this node' };
  await page.evaluate(() => { window.location.hash = '#/nodes'; });
  // A fresh shell (as after sign-in) with this health (the 30 s refresh is too slow here).
  await page.evaluate(async () => {
    const { renderShell } = await import('/ui/shell.js');
    const { api } = await import('/ui/api.js');
    window.shell.stop();
    const health = await api('GET', '/api/v1/health');
    window.shell = renderShell(document.body, { health, me: { user: 'admin', csrf_token: 't' }, onSignedOut() {} });
  });
  const strip = page.locator('.domains-strip');
  await page.getByRole('heading', { name: 'Nodes' }).waitFor();
  assert.equal(await strip.textContent(), '');
  assert.equal(await strip.isVisible(), false);
  // The Nodes page lists each domain's start, absent ones calmly.
  const vms = page.locator('[data-domain="vms"]');
  await vms.waitFor();
  assert.match(await vms.textContent(), /^Not on this nodeVMslibvirtd is not installed on this node$/);
  assert.match(await page.locator('[data-domain="storage"]').textContent(), /Running.*started in 4\.1 s/);
  await shot('nodes');
});

test('a witness hides Disks & pools, VMs and Images, and says why they are absent', async () => {
  witness = true;
  for (const d of ['storage', 'smart', 'vms']) domains[d] = { state: 'absent', reason: 'not on a witness' };
  await page.evaluate(async () => {
    const { renderShell } = await import('/ui/shell.js');
    const { api } = await import('/ui/api.js');
    window.shell.stop();
    window.location.hash = '#/storage';
    const health = await api('GET', '/api/v1/health');
    window.shell = renderShell(document.body, { health, me: { user: 'admin', csrf_token: 't' }, onSignedOut() {} });
  });
  // A hidden section's address opens the Cluster page instead.
  await page.getByRole('heading', { name: 'Cluster', level: 1 }).waitFor();
  const nav = page.getByRole('navigation', { name: 'Sections' });
  assert.equal(await nav.getByRole('link', { name: 'Disks & pools' }).isVisible(), false);
  assert.equal(await nav.getByRole('link', { name: 'VMs' }).isVisible(), false);
  assert.equal(await nav.getByRole('link', { name: 'Images' }).isVisible(), false);
  assert.equal(await nav.getByRole('link', { name: 'Cluster' }).isVisible(), true);
  assert.equal(await page.locator('.topbar [data-role="witness"]').isVisible(), true);
  await page.evaluate(() => { window.location.hash = '#/nodes'; });
  const vms = page.locator('[data-domain="vms"]');
  await vms.waitFor();
  assert.equal(await vms.textContent(), 'Not on a witnessVMs');
  await shot('witness');
});
