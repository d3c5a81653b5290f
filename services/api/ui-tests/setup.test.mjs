// Browser test of the web UI: starts a real cairnd (debug build) on a temporary machine,
// drives Debian's Chromium through the setup wizard, the dashboard, sign-out and sign-in,
// and keeps a desktop and a 360 px phone screenshot of every step.
//
// Environment: CAIRND (binary; default <repo>/target/debug/cairnd), CHROMIUM (default
// /usr/bin/chromium), UI_RESULTS (screenshots; default <repo>/build/ui-results).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { checkA11y } from './axe.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const targetDir = path.resolve(repo, process.env.CARGO_TARGET_DIR || 'target');
const CAIRND = process.env.CAIRND || path.join(targetDir, 'debug', 'cairnd');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const RESULTS = path.resolve(repo, process.env.UI_RESULTS || 'build/ui-results');
const PASSWORD = 'granite cairn on the ridge';
const NEW_PASSWORD = 'basalt steps above the tarn';
const DESKTOP = { width: 1280, height: 820 };
const PHONE = { width: 360, height: 760 };
const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';

let tmp;
let daemon;
let context;
let page;
let baseUrl;
let setupCode;
let hook;
let shotNo = 0;
const pageErrors = [];

/** A free TCP port on loopback. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A systemd-boot string variable as efivarfs shows it (attributes, UTF-16LE, NUL). */
function efiString(text) {
  const attrs = Buffer.alloc(4);
  attrs.writeUInt32LE(7);
  return Buffer.concat([attrs, Buffer.from(`${text}\0`, 'utf16le')]);
}

/** A temporary machine like the Rust tests': slot B booted with a counter, A failed. */
function machine(root) {
  const entries = path.join(root, 'esp/loader/entries');
  fs.mkdirSync(entries, { recursive: true });
  fs.writeFileSync(path.join(entries, 'cairn-b+2-1.conf'), 'title Cairn (slot b)\n');
  fs.writeFileSync(path.join(entries, 'cairn-a+0-3.conf'), 'title Cairn (slot a)\n');
  const efivars = path.join(root, 'efivars');
  fs.mkdirSync(efivars);
  fs.writeFileSync(path.join(efivars, `LoaderBootCountPath-${LOADER_GUID}`), efiString('\\loader\\entries\\cairn-b+2-1.conf'));
  fs.writeFileSync(path.join(efivars, `LoaderEntrySelected-${LOADER_GUID}`), efiString('cairn-b+2-1.conf'));
  fs.writeFileSync(path.join(root, 'cmdline'), 'console=ttyS0 cairn.slot=b quiet\n');
  fs.writeFileSync(path.join(root, 'failures.jsonl'),
    '{"time":1763856000,"slot":"a","reason":"root partition cairn-root-a: bad squashfs"}\n');
  fs.writeFileSync(path.join(root, 'console'), '');
}

async function waitFor(what, fn, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start cairnd; returns once it listens and the console shows the setup block. */
async function startCairnd(root) {
  assert.ok(fs.existsSync(CAIRND), `no cairnd at ${CAIRND}: run \`cargo build -p cairnd\` first`);
  const port = await freePort();
  const p = (rel) => path.join(root, rel);
  const log = fs.createWriteStream(path.join(RESULTS, 'cairnd.log'));
  const child = spawn(CAIRND, [
    '--listen', `127.0.0.1:${port}`, '--log', 'stderr', '--esp-mount', 'never',
    '--apply-hostname', 'never', '--address-wait-s', '1',
    '--state-dir', p('state'), '--console', p('console'), '--cmdline', p('cmdline'),
    '--efivars-dir', p('efivars'), '--esp-dir', p('esp'), '--boot-failures', p('failures.jsonl'),
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '' } });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    log.write(d);
  });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  await waitFor('cairnd to listen', () => {
    if (exited) throw new Error(`cairnd exited early (${JSON.stringify(exited)}):\n${stderr}`);
    return stderr.includes('listening on');
  });
  const text = await waitFor('the setup block on the console', () => {
    const t = fs.readFileSync(p('console'), 'utf8');
    return t.includes('CAIRN SETUP END') ? t : null;
  });
  const code = text.split('\n').find((l) => l.startsWith('Setup code: '))?.slice('Setup code: '.length);
  assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/, text);
  return { child, url: `https://127.0.0.1:${port}`, code };
}

/** A webhook receiver that answers slowly, so a test delivery is a task with visible progress. */
function slowHook() {
  return new Promise((resolve) => {
    const received = [];
    const srv = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        received.push(body);
        setTimeout(() => res.writeHead(200).end('ok'), 2500);
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve({ srv, received, url: `http://127.0.0.1:${srv.address().port}/hook` }));
  });
}

/**
 * Check the page with axe (serious or critical violations fail: axe.mjs), then screenshot it
 * at desktop size and at 360 px; fails if the phone layout scrolls sideways.
 */
async function shot(name) {
  shotNo += 1;
  const base = `${String(shotNo).padStart(2, '0')}-${name}`;
  await checkA11y(page, name);
  // A full-page shot of a scrolled page paints the sticky header mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(RESULTS, `${base}.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `${name}: the page is ${width} px wide on a ${PHONE.width} px phone`);
  await page.screenshot({ path: path.join(RESULTS, `${base}.phone.png`), fullPage: true });
  await page.setViewportSize(DESKTOP);
}

let broken = false;

/** One step of the journey: skipped once an earlier step failed; a failure is screenshotted. */
function step(name, fn) {
  test(name, async (t) => {
    if (broken) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn();
    } catch (err) {
      broken = true;
      await page?.screenshot({ path: path.join(RESULTS, `FAILED-${shotNo + 1}.png`), fullPage: true }).catch(() => {});
      throw err;
    }
  });
}

const heading = (text) => page.getByRole('heading', { name: text, level: 1 });

/** The error shown next to a field, once visible. */
async function fieldError(name) {
  const e = page.locator(`[data-field="${name}"] .field-error`);
  await e.waitFor({ state: 'visible' });
  return e.textContent();
}

/** Click the step's main button and wait until the request is answered. */
async function submit(name = 'Continue') {
  await page.getByRole('button', { name, exact: true }).click();
  await page.waitForFunction(() => !document.querySelector('button.busy'));
}

before(async () => {
  fs.mkdirSync(RESULTS, { recursive: true });
  for (const f of fs.readdirSync(RESULTS)) {
    if (f.endsWith('.png')) fs.rmSync(path.join(RESULTS, f));
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-ui-'));
  machine(tmp);
  daemon = await startCairnd(tmp);
  baseUrl = daemon.url;
  setupCode = daemon.code;
  hook = await slowHook();
  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: DESKTOP,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) {
      pageErrors.push(`console: ${m.text()}`);
    }
  });
});

after(async () => {
  if (context) await context.close();
  if (hook) hook.srv.close();
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => { daemon.child.kill('SIGKILL'); r(); }, 5000);
      daemon.child.on('exit', () => { clearTimeout(t); r(); });
    });
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

step('the page is served with a strict CSP on an unclaimed node', async () => {
  const resp = await page.goto(`${baseUrl}/`);
  assert.equal(resp.status(), 200);
  const h = resp.headers();
  assert.match(h['content-type'], /^text\/html/);
  assert.match(h['content-security-policy'], /^default-src 'self'/);
  await heading('Enter the setup code').waitFor();
  await shot('setup-code');
});

step('a wrong setup code is explained, and repeated ones show the wait', async () => {
  await page.getByLabel('Setup code').fill('AAAA-BBBB-CCCC');
  await submit();
  assert.match(await fieldError('code'), /not the setup code/);
  await shot('setup-code-wrong');
  // Keep guessing until the node holds this address back; the wait counts down.
  const wait = page.locator('[data-field="code"] .field-error.wait');
  for (let i = 0; i < 6 && !(await wait.isVisible()); i += 1) {
    await page.getByLabel('Setup code').fill(`AAAA-BBBB-CCC${i}`);
    await submit();
  }
  assert.match(await wait.textContent(), /Too many wrong codes from this address\. You can try again in \d+ s\./);
  assert.ok(await page.getByRole('button', { name: 'Continue' }).isDisabled());
  await shot('setup-code-rate-limited');
  await page.getByText('You can try again now').waitFor({ timeout: 20000 });
});

step('the right code leads to the password step, whose policy errors show at the field', async () => {
  await page.getByLabel('Setup code').fill(setupCode.toLowerCase());
  await submit();
  await heading('Choose the admin password').waitFor();
  await page.getByLabel('Password', { exact: true }).fill('too short');
  await page.getByLabel('Repeat the password').fill('too short');
  await submit();
  assert.match(await fieldError('password'), /at least 12 characters long \(this one has 9\)/);
  await shot('setup-password-too-short');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(`${PASSWORD}!`);
  await submit();
  assert.match(await fieldError('confirm'), /differ/);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await shot('setup-password');
  await submit();
});

step('the hostname step explains an invalid name', async () => {
  await heading('Name this node').waitFor();
  await page.getByLabel('Hostname').fill('nas_01');
  await submit();
  assert.match(await fieldError('hostname'), /'_' is not allowed/);
  await shot('setup-hostname-invalid');
  await page.getByLabel('Hostname').fill('nas-01');
  await submit();
  await heading('Set the time').waitFor();
});

step('a reload resumes setup where it stopped', async () => {
  await page.reload();
  await heading('Set the time').waitFor();
  assert.equal(await page.locator('.stepper li.done').count(), 3);
  await shot('setup-time-resumed');
});

step('the time step offers the node\'s zones and names the bad NTP server', async () => {
  const tz = page.getByLabel('Time zone');
  const tag = await tz.evaluate((e) => e.tagName);
  if (fs.existsSync('/usr/share/zoneinfo/zone1970.tab')) {
    assert.equal(tag, 'SELECT', 'the node has a tz database, so the zones are a list');
    await tz.selectOption('Europe/Berlin');
  } else {
    await tz.fill('Europe/Berlin');
  }
  await page.getByLabel('NTP servers').fill('pool.ntp.org\nbad_host');
  await submit();
  assert.match(await fieldError('servers'), /"bad_host" is not an IP address or host name/);
  await shot('setup-time-invalid-ntp');
  await page.getByLabel('NTP servers').fill('pool.ntp.org\n192.0.2.10');
  await submit();
  // The management network step (this host-run cairnd manages no network: current settings).
  await heading('Management network').waitFor();
  await shot('setup-network');
  await submit();
  await heading('Cluster').waitFor();
});

step('the cluster step offers standalone (the default), create or join, and checks the name', async () => {
  const standalone = page.getByRole('radio', { name: /Stay standalone/ });
  assert.ok(await standalone.isChecked(), 'standalone is the default');
  await page.getByRole('radio', { name: /Join a cluster/ }).waitFor();
  await page.getByRole('radio', { name: /Create a cluster/ }).check();
  await page.getByLabel('Cluster name').fill('Prod!');
  await submit();
  assert.match(await fieldError('name'), /lowercase letters, digits and -/);
  await shot('setup-cluster-invalid');
  await standalone.check();
  assert.ok(await page.getByLabel('Cluster name').isHidden());
  await shot('setup-cluster');
  await submit();
  await heading('Review and finish').waitFor();
});

step('review shows every answer and finishing lands on the dashboard, signed in', async () => {
  const review = await page.locator('dl.review').textContent();
  for (const want of ['nas-01', 'Europe/Berlin', 'pool.ntp.org, 192.0.2.10', 'Set (user admin)', 'Stay standalone']) {
    assert.ok(review.includes(want), `review lacks ${want}: ${review}`);
  }
  await shot('setup-review');
  await submit('Finish setup');
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  await heading('Nodes').waitFor();
  const health = await page.evaluate(async () => (await fetch('/api/v1/health')).json());
  assert.equal(await page.locator('.topbar .host').textContent(), health.hostname);
  await page.locator('.node-card').getByText('Version').waitFor();
  await page.getByText('failed to boot after').or(page.getByText('bad squashfs')).first().waitFor();
  await page.waitForFunction(() => document.querySelector('.live.on'));
  assert.equal(page.url(), `${baseUrl}/#/nodes`);
  await shot('dashboard-nodes');
});

step('every section answers; the domains still to come say so', async () => {
  for (const [nav, head, text] of [
    // The test's cairnd is not a booted node, so it manages no disks: the page says so.
    ['Disks & pools', 'Disks & pools', 'storage service is not running'],
    // Nor does it manage the host's network: the Network page says the service is not running.
    ['Network', 'Network', 'network service is not running'],
    // This test's cairnd runs without libvirtd: the VMs page says the service is not running.
    ['VMs', 'VMs', 'VM service is not running'],
    ['Alerts', 'Alerts', 'No active alerts'],
  ]) {
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: nav }).click();
    await heading(head).waitFor();
    await page.getByText(text).waitFor();
    await shot(`dashboard-${nav.toLowerCase().replace(/[^a-z]+/g, '-')}`);
  }
  // Setup chose standalone: the Cluster page says so (or, where cairnd does not start the
  // cluster domain, that its service is not running).
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Cluster' }).click();
  await heading('Cluster').waitFor();
  await page.getByText(/is standalone|cluster service is not running/).first().waitFor();
  await shot('dashboard-cluster');
});

step('tasks show live progress from the event stream', async () => {
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Tasks' }).click();
  await heading('Tasks').waitFor();
  await page.getByText('No tasks yet').waitFor();
  // A webhook test delivery is a real task; the slow receiver keeps it running a moment.
  const id = await page.evaluate(async (url) => {
    const me = await (await fetch('/api/v1/auth/me')).json();
    const headers = { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token };
    let r = await fetch('/api/v1/alerts/channels/webhook', { method: 'PUT', headers, body: JSON.stringify({ url }) });
    if (!r.ok) throw new Error(`webhook: ${r.status} ${await r.text()}`);
    r = await fetch('/api/v1/alerts/channels/webhook/test', { method: 'POST', headers });
    if (r.status !== 202) throw new Error(`test: ${r.status} ${await r.text()}`);
    return (await r.json()).id;
  }, hook.url);
  const row = page.locator(`.task[data-task="${id}"]`);
  await row.and(page.locator('[data-state="running"]')).waitFor();
  assert.equal(await page.locator('.nav .count-info').textContent(), '1', 'running tasks are counted');
  await shot('dashboard-task-running');
  await page.locator(`.task[data-task="${id}"][data-state="succeeded"]`).waitFor();
  assert.equal(await page.locator(`.task[data-task="${id}"] [role="progressbar"]`).getAttribute('aria-valuenow'), '100');
  assert.equal(hook.received.length, 1);
  await shot('dashboard-task-done');
});

step('alerts show their level, message, key and age (rendering checked with a fixture)', async () => {
  // Nothing raises alerts on a fresh node yet, so the list is answered from a fixture here.
  const now = Math.floor(Date.now() / 1000);
  const fixture = {
    active: [
      { key: 'pool/tank/degraded', level: 'critical', message: 'Pool tank is degraded: disk sdb failed', since: now - 600, updated: now - 600 },
      { key: 'disk/WWN-0x5000c500a1b2c3d4/smart', level: 'warning', message: 'Disk sdc: 8 reallocated sectors (was 0)', since: now - 7200, updated: now - 7200 },
    ],
    recent: [
      { key: 'pool/tank/degraded', level: 'critical', state: 'raised', message: 'Pool tank is degraded: disk sdb failed', time: now - 600 },
      { key: 'net/eno1/link', level: 'warning', state: 'cleared', message: 'Link eno1 is up again', time: now - 5400 },
    ],
  };
  await page.route('**/api/v1/alerts', (route) => route.fulfill({ json: fixture }));
  try {
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Alerts' }).click();
    await heading('Alerts').waitFor();
    await page.getByText('Pool tank is degraded').first().waitFor();
    assert.equal(await page.locator('.alert-critical .badge-critical').textContent(), 'Critical');
    assert.equal(await page.locator('.nav .count-critical').textContent(), '2');
    assert.equal(await page.locator('.topbar .health').textContent(), '1 critical alert', 'the header says so too');
    await page.getByText('since 10 min ago').waitFor();
    await shot('dashboard-alerts-fixture');
  } finally {
    await page.unroute('**/api/v1/alerts');
  }
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Tasks' }).click();
  await page.locator('.nav .count-critical').waitFor({ state: 'hidden' });
  await page.locator('.topbar .health').getByText('Healthy').waitFor();
});

step('sign out, a wrong password, then sign in again', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in').waitFor();
  await page.getByText('You are signed out.').waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
  assert.equal(me, 401, 'the session is gone');
  await shot('login-signed-out');
  await page.getByLabel('Password').fill('not the password');
  await submit('Sign in');
  assert.match(await fieldError('password'), /Wrong user name or password\./);
  await shot('login-wrong-password');
  await page.getByLabel('Password').fill(PASSWORD);
  await submit('Sign in');
  await heading('Tasks').waitFor();
  await shot('dashboard-after-sign-in');
});

step('after a reload the session and its CSRF token still work', async () => {
  await page.reload();
  await heading('Tasks').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in').waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
  assert.equal(me, 401, 'sign-out (a POST with the CSRF token) worked after the reload');
  await page.getByLabel('Password').fill(PASSWORD);
  await submit('Sign in');
  await heading('Tasks').waitFor();
});

/** What the Account steps pass on (the token the password change must end). */
const state = {};

/** GET /api/v1/auth/me with API token `secret` (and no cookie): the status. */
const meWithToken = (secret) => page.evaluate(async (t) => (await fetch('/api/v1/auth/me', {
  headers: { Authorization: `Bearer ${t}` }, credentials: 'omit',
})).status, secret);

/** Create an API token through the Account page's form; returns the answer's token fields. */
async function createToken(name, scope, days) {
  const form = page.locator('form', { hasText: 'New token' });
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Scope').selectOption(scope);
  await form.getByLabel('Valid for (days)').fill(days);
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/tokens') && r.request().method() === 'POST');
  await form.getByRole('button', { name: 'Create token' }).click();
  const t = await (await answer).json();
  await page.locator(`[data-new-token="${t.id}"]`).waitFor();
  assert.equal(await page.getByLabel(`Secret of token ${name}`).inputValue(), t.token, 'the secret is shown');
  await page.locator(`[data-token="${t.id}"]`).waitFor();
  return t;
}

step('the Account page creates, lists and revokes API tokens', async () => {
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Account' }).click();
  await heading('Account').waitFor();
  await page.getByText('Signed in as admin').waitFor();
  await page.locator('ul.tokens').or(page.getByText('No API tokens')).first().waitFor();
  await shot('account');
  const form = page.locator('form', { hasText: 'New token' });
  // Out-of-range days are caught in the page; a bad name is the node's 422 at its field.
  await form.getByLabel('Valid for (days)').fill('0');
  await form.getByRole('button', { name: 'Create token' }).click();
  assert.match(await fieldError('expires_days'), /1 to 3650 days/);
  await form.getByLabel('Valid for (days)').fill('30');
  await form.getByLabel('Name').fill('   ');
  await form.getByRole('button', { name: 'Create token' }).click();
  assert.match(await fieldError('name'), /1 to 64 printable characters/);

  const script = await createToken('backup-script', 'read_only', '30');
  assert.equal(await meWithToken(script.token), 200, 'the new token works');
  const row = page.locator(`[data-token="${script.id}"]`);
  if (script.scope) assert.match(await row.textContent(), /Read-only/);
  assert.match(await row.textContent(), /expires in (29|30) d|never expires/);
  await shot('account-token-created');
  const laptop = await createToken('laptop', 'admin', '90');
  assert.equal(await page.locator('ul.tokens > li').count(), 2);

  await row.getByRole('button', { name: 'Revoke… token backup-script' }).click();
  await row.getByRole('button', { name: 'Revoke', exact: true }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal(await meWithToken(script.token), 401, 'the revoked token is refused');
  assert.equal(await meWithToken(laptop.token), 200, 'the other token still works');
  state.laptop = laptop;
});


step('the Account page changes the password, ending the API tokens', async () => {
  const form = page.locator('form', { hasText: 'Change password' });
  await form.getByLabel('Current password').fill('not the password');
  await form.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await form.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await submit('Change password');
  assert.match(await fieldError('current_password'), /current password is wrong/i);
  await shot('account-password-wrong');
  await form.getByLabel('Current password').fill(PASSWORD);
  await form.getByLabel('Repeat the new password').fill(`${NEW_PASSWORD}!`);
  await submit('Change password');
  assert.match(await fieldError('confirm'), /differ/);
  await form.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await submit('Change password');
  const done = page.locator('.done-notice');
  await done.waitFor();
  assert.match(await done.textContent(), /every API token of admin were ended/);
  assert.match(await done.textContent(), /cairnctl login/);
  assert.equal(await meWithToken(state.laptop.token), 401, 'the password change revoked the token');
  await page.getByText('No API tokens').waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
  assert.equal(me, 200, 'this session stays signed in');
  await shot('account-password-changed');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in').waitFor();
  await page.getByLabel('Password').fill(NEW_PASSWORD);
  await submit('Sign in');
  await heading('Account').waitFor();
});

test('no script errors and no CSP violations', () => {
  assert.deepEqual(pageErrors, []);
});
