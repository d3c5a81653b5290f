// Browser test of cluster.js: renders the Cluster page in Debian's Chromium against a scripted
// API: standalone (create and join cards, the node's addresses offered, a 422 shown under its
// field, a create that runs as a task), then a member (quorum, the failover line, the node table
// with liveness, a one-time join token with Copy, remove of an offline node confirmed by name).
//
// Run: cd services/api/ui-tests && node --test cluster.test.mjs   (CHROMIUM overrides the
// browser, UI_RESULTS the screenshot folder; default <repo>/build/ui-results)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { json, openScripted, ORIGIN, screenshots, ScriptedApi } from './scripted-api.mjs';

let browser;
let page;

const STANDALONE = { mode: 'standalone', this_node: 'nas-01', cluster: null, quorum: null, nodes: [], failover: null };
const MEMBER = {
  mode: 'member',
  this_node: 'nas-01',
  cluster: { name: 'prod', id: 'c1', ca_fingerprint: 'sha256:ab12', created_at: 1763870000 },
  quorum: { has_quorum: true, reachable: ['nas-01', 'nas-02'], voters: ['nas-01', 'nas-02', 'nas-03'] },
  failover: { automatic: false, reason: 'only two voters reachable: a third vote (a witness) is needed' },
  nodes: [
    { name: 'nas-01', address: '10.0.0.11', role: 'voter', liveness: 'online', last_seen_s_ago: 0, etcd_member: { id: 'a1', learner: false }, bridges: [] },
    { name: 'nas-02', address: '10.0.0.12', role: 'voter', liveness: 'online', last_seen_s_ago: 2, etcd_member: { id: 'a2', learner: false }, bridges: [] },
    { name: 'nas-03', address: '10.0.0.13', role: 'voter', liveness: 'offline', last_seen_s_ago: 312, etcd_member: { id: 'a3', learner: true }, bridges: [] },
  ],
  bridges: [
    { bridge: 'br-dmz', nodes: ['nas-01'], missing_on: ['nas-02', 'nas-03'] },
    { bridge: 'br0', nodes: ['nas-01', 'nas-02', 'nas-03'], missing_on: [] },
  ],
  snapshots: [{ file: 'etcd-001763870000-r42.db', taken_at: 1763870000, size: 40960, revision: 42 }],
};

let status = STANDALONE;
const api = new ScriptedApi(({ method, path: p, b }) => {
  if (p === '/api/v1/cluster' && method === 'GET') return json(200, status);
  if (p === '/api/v1/tasks') return json(200, { tasks: Object.values(api.tasks) });
  if (p.startsWith('/api/v1/tasks/')) return json(200, api.tasks[Number(p.split('/').pop())]);
  if (p === '/api/v1/network/status') {
    return json(200, { links: [
      { name: 'lo', addresses: ['127.0.0.1/8', '::1/128'] },
      { name: 'ens3', addresses: ['10.0.0.11/24', 'fe80::1/64'] },
      { name: 'ens4', addresses: ['192.168.50.2/24'] },
    ], routes: [] });
  }
  if (p === '/api/v1/cluster' && method === 'POST') {
    if (!/^[a-z][a-z0-9-]*$/.test(b.name)) {
      return json(422, { code: 'invalid', message: 'use lowercase letters, digits and \'-\', starting with a letter', field: 'name' });
    }
    return json(202, api.task(7, 'cluster.create', `creating cluster ${b.name}`));
  }
  if (p === '/api/v1/cluster/tokens') return json(201, { token: 'cairn-join:1.abc.def', expires_at: Math.floor(Date.now() / 1000) + 3600 });
  if (p === '/api/v1/cluster/nodes/nas-03' && method === 'DELETE') return json(202, api.task(8, 'cluster.remove', 'removing node nas-03'));
  return undefined;
}, { events: true });
const { calls } = api;

const shot = screenshots(() => page, { prefix: 'cluster' });

before(async () => {
  ({ browser, page } = await openScripted(api, {
    stylesheet: true,
    viewport: { width: 1280, height: 900 },
    script: 'import { renderCluster } from "/ui/cluster.js"; import { connect } from "/ui/events.js";'
      + ' connect(); renderCluster(document.getElementById("m"));',
  }));
  await page.goto(`${ORIGIN}/`);
});

after(async () => {
  await browser?.close();
});

test('a standalone node offers create and join, with its own addresses', async () => {
  const create = page.locator('form[data-form="create"]');
  await create.waitFor();
  await page.locator('form[data-form="join"]').waitFor();
  assert.match(await page.locator('.main').textContent(), /nas-01 is standalone/);
  const options = await create.getByLabel('Cluster address').locator('option').allTextContents();
  assert.deepEqual(options, ['10.0.0.11', '192.168.50.2'], 'loopback and link-local are left out');
  await page.locator('form[data-form="join"]').getByLabel('Join as a witness').waitFor();
  await shot('standalone');
});

test('the create form shows the node\'s 422 under the field it names', async () => {
  const create = page.locator('form[data-form="create"]');
  await create.getByLabel('Cluster name').fill('Prod!');
  await create.getByRole('button', { name: 'Create cluster' }).click();
  const err = create.locator('[data-field="name"] .field-error');
  await err.waitFor();
  assert.equal(await err.textContent(), 'Use lowercase letters, digits and \'-\', starting with a letter.');
  assert.equal(await create.getByLabel('Cluster name').getAttribute('aria-invalid'), 'true');
  await shot('create-invalid');
});

test('a create runs as a task with progress, then the page shows the member', async () => {
  const create = page.locator('form[data-form="create"]');
  await create.getByLabel('Cluster name').fill('prod');
  await create.getByLabel('Cluster address').selectOption('10.0.0.11');
  await create.getByRole('button', { name: 'Create cluster' }).click();
  await page.locator('[data-cluster-task="7"]').waitFor();
  assert.ok(calls.includes('POST /api/v1/cluster {"name":"prod","address":"10.0.0.11"}'), calls.join('\n'));
  api.progress(7, 40, 'running', 'starting etcd');
  await page.getByText('Starting etcd.').waitFor();
  status = MEMBER;
  api.progress(7, 100, 'succeeded', 'cluster prod created');
  await page.getByRole('heading', { name: 'Cluster prod' }).waitFor();
});

test('a member shows quorum, the failover line and its nodes', async () => {
  const text = await page.locator('.main').textContent();
  assert.match(text, /Quorum 2 of 3 voters reachable/);
  assert.match(text, /No automatic failover: Only two voters reachable: a third vote \(a witness\) is needed\./);
  const offline = page.locator('tr[data-node="nas-03"]');
  assert.match(await offline.textContent(), /Offline · last seen 312 s ago/);
  assert.match(await offline.textContent(), /Learner/);
  assert.equal(await page.locator('tr[data-node="nas-02"] button', { hasText: 'Remove' }).count(), 0, 'only offline nodes');
  assert.match(await page.locator('tr[data-node="nas-01"]').textContent(), /this node/);
  const bridges = page.locator('table.bridges tbody tr');
  assert.equal(await bridges.count(), 2);
  assert.match(await bridges.nth(0).textContent(), /br-dmz\s*nas-01\s*nas-02, nas-03/);
  assert.match(await bridges.nth(1).textContent(), /br0.*nas-01, nas-02, nas-03.*—/);
  assert.match(await page.locator('table.snapshots').textContent(), /40 KiB\s*42\s*etcd-001763870000-r42\.db/);
  await shot('member');
});

test('add a node shows the token once, with Copy and its expiry', async () => {
  await page.getByRole('button', { name: 'Add a node' }).click();
  const box = page.locator('[data-token]');
  await box.waitFor();
  assert.equal(await box.getByLabel('Join token').inputValue(), 'cairn-join:1.abc.def');
  await box.getByRole('button', { name: 'Copy' }).waitFor();
  assert.match(await box.textContent(), /Shown only this once/);
  assert.match(await box.locator('.expires').textContent(), /in 1 h 0 min|in 59 min/);
  await shot('token');
});

test('remove asks for the offline node\'s name, then runs as a task', async () => {
  await page.locator('tr[data-node="nas-03"] button', { hasText: 'Remove' }).click();
  const form = page.locator('form[data-form="remove"]');
  await form.waitFor();
  assert.match(await form.textContent(), /Remove node nas-03\?/);
  const go = form.getByRole('button', { name: 'Remove nas-03' });
  assert.ok(await go.isDisabled());
  await form.getByLabel('Node name').fill('nas-03');
  await go.click();
  await page.locator('[data-cluster-task="8"]').waitFor();
  assert.ok(calls.includes('DELETE /api/v1/cluster/nodes/nas-03'), calls.join('\n'));
  await shot('remove');
});

test('on a witness the page says so, and a witness makes failover automatic', async () => {
  status = {
    ...MEMBER,
    this_node: 'wit-01',
    quorum: { has_quorum: true, reachable: ['nas-01', 'nas-02', 'wit-01'], voters: ['nas-01', 'nas-02', 'wit-01'] },
    failover: { automatic: true, reason: null },
    nodes: [
      MEMBER.nodes[0],
      MEMBER.nodes[1],
      { name: 'wit-01', address: '10.0.0.19', role: 'witness', liveness: 'online', last_seen_s_ago: 1, etcd_member: { id: 'a9', learner: false }, bridges: [] },
    ],
  };
  await page.goto(`${ORIGIN}/`);
  await page.locator('[data-role="witness"]').waitFor();
  const text = await page.locator('.main').textContent();
  assert.match(text, /This node is the cluster's witness/);
  assert.match(text, /Automatic failover/);
  assert.doesNotMatch(text, /No automatic failover/);
  assert.match(await page.locator('tr[data-node="wit-01"]').textContent(), /Witness/);
  await shot('witness');
});
