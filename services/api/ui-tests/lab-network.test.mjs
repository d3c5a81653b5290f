// Browser test of the Network page on a booted lab node with four NICs (started by
// qemu-test/tests/ui_network.rs, which checks the node's links between the phases). One phase
// per run, CAIRN_NET_PHASE:
// - `build`: bond (two lab NICs) → VLAN 20 → bridge br20 with 10.20.0.2/24 and a static
//   management address on the third lab NIC, through the forms only; invalid input (a member
//   used twice, a gateway outside every subnet) shown under the right field; the pending
//   changes, Apply in try mode, the countdown going down, Confirm.
// - `rollback`: a change to br20's address applied with a short try window and left
//   unconfirmed: the page says it was rolled back by itself.
// - `move`: run from the lab network (the address this page uses is the one that moves): the
//   management address moves to CAIRN_NEW_ADDR, the page says where the node will be,
//   follows it there, signs in again and confirms from the new address.
// Screenshots (desktop and phone) of each step are kept.
//
// Environment: CAIRN_URL, CAIRN_PASSWORD, CAIRN_NET_PHASE, CAIRN_NICS (the kernel names of
// the three lab NICs, comma-separated), CAIRN_NEW_ADDR (phase move: the new address).

import assert from 'node:assert/strict';
import { BASE, labBrowser, RESULTS } from './lab-node.mjs';
import { screenshots } from './scripted-api.mjs';

const PASSWORD = process.env.CAIRN_PASSWORD;
const PHASE = process.env.CAIRN_NET_PHASE;
const [NIC_A, NIC_B, NIC_C] = (process.env.CAIRN_NICS || '').split(',').map((s) => s.trim());
const NEW_ADDR = process.env.CAIRN_NEW_ADDR;
// Applying, and the node's answers, are slow under TCG.
const APPLY_MS = 120000;

let page;
const { step, heading, pageErrors } = labBrowser({
  profile: `cairn-ui-lab-network-${PHASE}`,
  check: () => {
    assert.ok(BASE && PASSWORD && PHASE, 'set CAIRN_URL, CAIRN_PASSWORD and CAIRN_NET_PHASE (the lab test does)');
    assert.ok(NIC_A && NIC_B && NIC_C, 'set CAIRN_NICS to the three lab NICs');
  },
  opened: (p) => { page = p; },
  failedShot: (name) => `network-${PHASE}-FAILED-${name.replace(/[^a-z]+/gi, '-')}.png`,
});
const shot = screenshots(() => page, { prefix: `network-${PHASE}`, dir: RESULTS, height: 1100, fromTop: true });

const node = (name) => page.locator(`.topology-svg [data-node="${name}"]`);
const editor = () => page.locator('.net-editor form');
const fieldError = (name) => editor().locator(`[data-field="${name}"] .field-error`);
const bar = () => page.locator('.net-bar-warning');

async function signIn(url) {
  await page.goto(url);
  await heading('Sign in').waitFor();
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await heading('Network').waitFor();
  await node(NIC_A).waitFor();
}

async function save() {
  await editor().locator('button[type=submit]').click();
  await editor().waitFor({ state: 'detached' });
}

/** Apply the pending changes in try mode with `timeout` s; returns the first countdown value. */
async function applyTry(timeout) {
  const pending = page.locator('.pending-changes');
  await pending.locator('input[name=timeout_s]').fill(String(timeout));
  await pending.getByRole('button', { name: 'Apply in try mode' }).click();
  await bar().waitFor({ timeout: APPLY_MS });
  return Number(await bar().locator('.countdown').getAttribute('data-seconds'));
}

if (PHASE === 'build') {
  step('signing in opens the Network page with the NICs drawn', async () => {
    await signIn(`${BASE}/#/network`);
    for (const n of [NIC_A, NIC_B, NIC_C]) await node(n).waitFor();
    assert.match(await page.locator('.topology-svg .topo-node.mgmt').first().textContent(), /mgmt/);
  });

  step('a bond of two NICs through its form', async () => {
    await page.getByRole('button', { name: 'Add bond' }).click();
    await editor().getByLabel('Name').fill('bond0');
    await editor().locator(`input[name=members][value="${NIC_A}"]`).check();
    await editor().locator(`input[name=members][value="${NIC_B}"]`).check();
    await editor().getByLabel('Mode').selectOption('active-backup');
    await editor().getByLabel('Primary member').selectOption(NIC_A);
    await editor().getByLabel('Addressing').selectOption('none');
    await save();
    await node('bond0').waitFor();
  });

  step('a member used twice is shown under Members', async () => {
    await page.getByRole('button', { name: 'Add bond' }).click();
    await editor().getByLabel('Name').fill('bond1');
    await editor().locator(`input[name=members][value="${NIC_A}"]`).check();
    await editor().getByLabel('Addressing').selectOption('none');
    await editor().locator('button[type=submit]').click();
    await fieldError('members').waitFor({ state: 'visible' });
    assert.match(await fieldError('members').textContent(), new RegExp(`"${NIC_A}" is already used by bond0`));
    await shot('lab-member-twice');
    await editor().getByRole('button', { name: 'Close' }).click();
  });

  step('VLAN 20 on the bond, bridge br20 with an address, a static management address', async () => {
    await page.getByRole('button', { name: 'Add vlan' }).click();
    await editor().getByLabel('Parent').selectOption('bond0');
    await editor().getByLabel('VLAN id').fill('20');
    await editor().getByLabel('Addressing').selectOption('none');
    await save();
    await node('bond0.20').waitFor();
    await page.getByRole('button', { name: 'Add bridge' }).click();
    await editor().getByLabel('Name').fill('br20');
    await editor().locator('input[name=ports][value="bond0.20"]').check();
    await editor().getByLabel('Addressing').selectOption('static');
    await editor().getByLabel(/^Addresses/).fill('10.20.0.2/24');
    await save();
    await node('br20').waitFor();
    await node(NIC_C).click();
    await editor().getByLabel('Addressing').selectOption('static');
    await editor().getByLabel(/^Addresses/).fill('10.30.0.2/24');
    await editor().locator('[data-field="management"] input').check();
    await save();
  });

  step('a gateway outside every subnet is shown under Gateway', async () => {
    await page.getByRole('button', { name: 'Add route' }).click();
    await editor().getByLabel('Destination').fill('10.99.0.0/16');
    await editor().getByLabel('Gateway').fill('192.0.2.1');
    await editor().locator('button[type=submit]').click();
    await fieldError('gateway').waitFor({ state: 'visible' });
    assert.match(await fieldError('gateway').textContent(), /192\.0\.2\.1 is not inside a subnet/);
    await shot('lab-gateway');
    await editor().getByRole('button', { name: 'Close' }).click();
  });

  step('the pending changes come from the node\'s plan', async () => {
    const pending = page.locator('.pending-changes');
    await pending.waitFor();
    const created = await pending.locator('.plan-create').textContent();
    for (const n of ['bond0', 'bond0.20', 'br20']) assert.ok(created.includes(n), created);
    await shot('lab-pending');
  });

  step('apply in try mode: the countdown runs on every page; Confirm keeps the change', async () => {
    const first = await applyTry(300);
    assert.ok(first > 200 && first <= 300, `countdown starts at ${first}`);
    await page.waitForFunction((n) => Number(document.querySelector('.net-bar .countdown')?.dataset.seconds) < n, first, { timeout: 10000 });
    await shot('lab-try');
    // Another page of the shell shows it too.
    await page.locator('nav a[data-section="alerts"]').click();
    await heading('Alerts').waitFor();
    await bar().waitFor();
    await page.locator('nav a[data-section="network"]').click();
    await heading('Network').waitFor();
    await bar().getByRole('button', { name: 'Confirm' }).click();
    await bar().waitFor({ state: 'detached', timeout: APPLY_MS });
    await node('br20').waitFor();
    await shot('lab-confirmed');
    assert.deepEqual(pageErrors, []);
  });
}

if (PHASE === 'rollback') {
  step('a change left unconfirmed rolls back by itself and the page says so', async () => {
    await signIn(`${BASE}/#/network`);
    await node('br20').click();
    await editor().getByLabel(/^Addresses/).fill('10.20.0.3/24');
    await save();
    await applyTry(20);
    await shot('lab-unconfirmed');
    const info = page.locator('.net-bar-info');
    await info.waitFor({ timeout: APPLY_MS });
    assert.match(await info.textContent(), /rolled back by itself \(the change was not confirmed within 20 s\)/);
    await shot('lab-rolled-back');
    assert.deepEqual(pageErrors, []);
  });
}

if (PHASE === 'move') {
  step('the management address moves: the page follows it and confirms from there', async () => {
    assert.ok(NEW_ADDR, 'set CAIRN_NEW_ADDR');
    await signIn(`${BASE}/#/network`);
    await node(NIC_C).click();
    await editor().getByLabel(/^Addresses/).fill(`${NEW_ADDR}/24`);
    await save();
    const move = page.locator('.pending-changes .net-move');
    await move.waitFor();
    assert.match(await move.textContent(), new RegExp(`The node will be at https://${NEW_ADDR.replace(/\./g, '\\.')}`));
    await shot('lab-move-pending');
    // The page goes to the new address by itself (as soon as it answers: the countdown bar
    // may show only for a moment); sign in there.
    const pending = page.locator('.pending-changes');
    await pending.locator('input[name=timeout_s]').fill('300');
    await pending.getByRole('button', { name: 'Apply in try mode' }).click();
    await page.waitForURL(new RegExp(`^https://${NEW_ADDR.replace(/\./g, '\\.')}/`), { timeout: APPLY_MS });
    await heading('Sign in').waitFor();
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await heading('Network').waitFor();
    await bar().waitFor();
    await shot('lab-move-new-address');
    await bar().getByRole('button', { name: 'Confirm' }).click();
    await bar().waitFor({ state: 'detached', timeout: APPLY_MS });
    assert.ok(page.url().startsWith(`https://${NEW_ADDR}/`), page.url());
    assert.deepEqual(pageErrors, []);
  });
}

if (!['build', 'rollback', 'move'].includes(PHASE)) {
  step('phase', () => assert.fail(`unknown CAIRN_NET_PHASE ${PHASE} (build, rollback, move)`));
}

