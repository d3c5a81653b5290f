// Browser test on a booted, unclaimed lab node of a cluster lab (qemu-test/tests/cluster_form.rs):
// Debian's Chromium goes through the setup wizard (code, password, name, time, the management
// network, the Cluster step) choosing "Join a cluster" with a token made on a member and the
// node's cluster address, finishes setup and follows the join on the Cluster page until the
// node is a member. A desktop screenshot of every step is kept.
//
// Environment (required): CAIRN_URL, CAIRN_SETUP_CODE, CAIRN_TOKEN (a join token made on a
// member), CAIRN_CLUSTER_ADDRESS (this node's address on the cluster network), CAIRN_PASSWORD
// (the admin password to set; the lab signs in with it afterwards). Optional: CAIRN_HOSTNAME
// (default node3), CAIRN_CLUSTER (the cluster's name, default lab), CAIRN_MGMT_MAC (the
// management NIC's MAC: the wizard's network step picks that link), UI_RESULTS.

import assert from 'node:assert/strict';
import path from 'node:path';
import { checkA11y } from './axe.mjs';
import { BASE, labBrowser, RESULTS, STEP_MS } from './lab-node.mjs';

const CODE = process.env.CAIRN_SETUP_CODE;
const TOKEN = process.env.CAIRN_TOKEN;
const ADDRESS = process.env.CAIRN_CLUSTER_ADDRESS;
const PASSWORD = process.env.CAIRN_PASSWORD;
const HOSTNAME = process.env.CAIRN_HOSTNAME || 'node3';
const CLUSTER = process.env.CAIRN_CLUSTER || 'lab';
const MGMT_MAC = (process.env.CAIRN_MGMT_MAC || '').toLowerCase();
// A join under TCG: the CSR, etcd started as a learner, caught up and promoted.
const JOIN_MS = 420000;

let page;
let shotNo = 0;

const { step, heading, pageErrors } = labBrowser({
  profile: 'cairn-ui-cluster-join',
  check: () => assert.ok(BASE && CODE && TOKEN && ADDRESS && PASSWORD,
    'set CAIRN_URL, CAIRN_SETUP_CODE, CAIRN_TOKEN, CAIRN_CLUSTER_ADDRESS and CAIRN_PASSWORD (the lab test does)'),
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

/** Submit the current step and wait until the page shows another one. */
async function next() {
  const title = (await page.locator('h1').textContent()).trim();
  await submit();
  await page.waitForFunction((t) => document.querySelector('h1')?.textContent.trim() !== t, title, { timeout: STEP_MS });
}

step('the unclaimed node serves its setup page', async () => {
  const resp = await page.goto(`${BASE}/`);
  assert.equal(resp.status(), 200);
  await heading('Enter the setup code').waitFor();
  await shot('code');
});

step('code, password and name', async () => {
  await page.getByLabel('Setup code').fill(CODE);
  await submit();
  await heading('Choose the admin password').waitFor();
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await shot('password');
  await submit();
  await heading('Name this node').waitFor();
  await page.getByLabel('Hostname').fill(HOSTNAME);
  await shot('hostname');
  await next();
});

step('time and management network lead to the Cluster step', async () => {
  await heading('Set the time').waitFor();
  await page.getByLabel('NTP servers').fill('10.0.2.2');
  await shot('time');
  await next();
  for (let i = 0; i < 3; i += 1) {
    const title = (await page.locator('h1').textContent()).trim();
    if (title === 'Cluster') break;
    if (title === 'Management network' && MGMT_MAC) {
      // The lab's management NIC (the one the browser reaches the node on), by its MAC.
      const iface = page.getByLabel('Interface');
      await page.waitForFunction((mac) => [...document.querySelectorAll('option')]
        .some((o) => o.textContent.toLowerCase().includes(mac)), MGMT_MAC, { timeout: STEP_MS });
      const value = await iface.evaluate((sel, mac) => [...sel.options]
        .find((o) => o.textContent.toLowerCase().includes(mac))?.value, MGMT_MAC);
      assert.ok(value, `no link with the management MAC ${MGMT_MAC}`);
      await iface.selectOption(value);
    }
    await shot(`step-${title.toLowerCase().replace(/[^a-z]+/g, '-')}`);
    await next();
  }
  await heading('Cluster').waitFor();
});

step('the Cluster step: join with the token at the cluster address', async () => {
  const join = page.locator('input[name="cluster-mode"][value="join"]');
  await join.check();
  await page.getByLabel('Join token').fill(TOKEN);
  const witness = page.getByRole('checkbox', { name: /Join as a witness/ });
  assert.equal(await witness.isVisible(), true, 'the wizard offers joining as a witness');
  assert.equal(await witness.isChecked(), false);
  const address = page.getByLabel('Cluster address');
  await page.waitForFunction((a) => [...document.querySelectorAll('[data-field="address"] option')]
    .some((o) => o.value === a), ADDRESS, { timeout: STEP_MS });
  await address.selectOption(ADDRESS);
  await shot('cluster-join');
  await submit();
  await heading('Review and finish').waitFor();
  const text = await page.locator('dl.review').textContent();
  assert.ok(text.includes(`Join a cluster at ${ADDRESS}`), `review: ${text}`);
  assert.ok(text.includes(HOSTNAME), `review lacks ${HOSTNAME}: ${text}`);
  await shot('review');
});

step('finishing starts the join; the Cluster page follows it to membership', async () => {
  await submit('Finish setup');
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  await heading('Cluster').waitFor();
  await shot('cluster-joining');
  await page.getByRole('heading', { name: `Cluster ${CLUSTER}`, level: 2 }).waitFor({ timeout: JOIN_MS });
  // The node's own row (the cluster knows it by the name cairnd started with).
  const row = page.locator('tr', { hasText: '(this node)' });
  await row.first().waitFor({ timeout: STEP_MS });
  assert.match(await row.first().textContent(), /Voter/);
  await shot('cluster-member');
  assert.deepEqual(pageErrors, []);
});
