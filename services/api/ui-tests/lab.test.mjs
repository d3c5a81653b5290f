// Browser test on a booted lab node: drives Debian's Chromium through the whole setup wizard
// of a real appliance (code, password, name, time, the management network when the wizard
// has that step, review) and lands on the dashboard, keeping a desktop screenshot of every
// step. The node is started by the lab (qemu-test/tests/ui.rs), not by this test.
//
// Environment (required): CAIRN_URL (https://127.0.0.1:PORT), CAIRN_SETUP_CODE (from the
// console). Optional: CAIRN_TIMEZONE (default Europe/Berlin), CAIRN_NTP (servers, one per
// line or comma-separated; default 10.0.2.2), CAIRN_HOSTNAME (default lab-ui), CHROMIUM
// (default /usr/bin/chromium), UI_RESULTS (screenshots; default <repo>/build/ui-results/lab).

import assert from 'node:assert/strict';
import path from 'node:path';
import { checkA11y } from './axe.mjs';
import { BASE, labBrowser, RESULTS, STEP_MS } from './lab-node.mjs';

const CODE = process.env.CAIRN_SETUP_CODE;
const TIMEZONE = process.env.CAIRN_TIMEZONE || 'Europe/Berlin';
const NTP = (process.env.CAIRN_NTP || '10.0.2.2').split(/[\s,]+/).filter(Boolean);
const HOSTNAME = process.env.CAIRN_HOSTNAME || 'lab-ui';
const PASSWORD = 'granite cairn on the ridge';

let page;
let shotNo = 0;

const { step, heading, pageErrors } = labBrowser({
  profile: 'cairn-ui-lab',
  check: () => assert.ok(BASE && CODE, 'set CAIRN_URL and CAIRN_SETUP_CODE (the lab test does)'),
  opened: (p) => { page = p; },
  failedShot: () => `FAILED-${shotNo + 1}.png`,
});

/** Check the page with axe (serious or critical violations fail), then screenshot it. */
async function shot(name) {
  shotNo += 1;
  await checkA11y(page, name);
  const file = path.join(RESULTS, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function submit(name = 'Continue') {
  await page.getByRole('button', { name, exact: true }).click();
  await page.waitForFunction(() => !document.querySelector('button.busy'), null, { timeout: STEP_MS });
}

step('the node serves the setup page', async () => {
  const resp = await page.goto(`${BASE}/`);
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'], /^default-src 'self'/);
  await heading('Enter the setup code').waitFor();
  await shot('code');
});

step('the console\'s setup code is accepted', async () => {
  await page.getByLabel('Setup code').fill(CODE);
  await submit();
  await heading('Choose the admin password').waitFor();
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await shot('password');
  await submit();
});

step('the node is named', async () => {
  await heading('Name this node').waitFor();
  await page.getByLabel('Hostname').fill(HOSTNAME);
  await shot('hostname');
  await submit();
});

step('the time zone comes from the node\'s tz database; NTP servers are set', async () => {
  await heading('Set the time').waitFor();
  const tz = page.getByLabel('Time zone');
  assert.equal(await tz.evaluate((e) => e.tagName), 'SELECT', 'the appliance has a tz database');
  await tz.selectOption(TIMEZONE);
  await page.getByLabel('NTP servers').fill(NTP.join('\n'));
  await shot('time');
  await submit();
});

step('the remaining steps (management network, when present) lead to the review', async () => {
  const review = heading('Review and finish');
  for (let i = 0; i < 4 && !(await review.isVisible()); i += 1) {
    const h1 = page.locator('h1');
    await h1.waitFor();
    const title = (await h1.textContent()).trim();
    if (title === 'Review and finish') break;
    // A step added after the time step (the management network): its defaults keep the
    // address the browser reaches the node on.
    await shot(`step-${title.toLowerCase().replace(/[^a-z]+/g, '-')}`);
    await submit();
    await page.waitForFunction((t) => document.querySelector('h1')?.textContent.trim() !== t, title, { timeout: STEP_MS });
  }
  await review.waitFor();
  const text = await page.locator('dl.review').textContent();
  for (const want of [HOSTNAME, TIMEZONE, NTP.join(', ')]) {
    assert.ok(text.includes(want), `review lacks ${want}: ${text}`);
  }
  await shot('review');
});

step('finishing lands on the dashboard, signed in', async () => {
  await submit('Finish setup');
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  await heading('Nodes').waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).json());
  assert.equal(me.user, 'admin');
  const time = await page.evaluate(async () => (await fetch('/api/v1/time')).json());
  assert.equal(time.timezone, TIMEZONE);
  assert.deepEqual(time.ntp_servers, NTP);
  await shot('dashboard');
  assert.deepEqual(pageErrors, []);
});
