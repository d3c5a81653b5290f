// Browser test of network.js and netpending.js: the Network page in Debian's Chromium against
// a scripted API (requests answered by the test). Builds bond → VLAN → bridge through the
// forms, shows the API's field errors under the right field (a member used twice, a gateway
// outside every subnet), the pending changes from the node's plan, the consequences of a
// removal, try mode with its countdown, Confirm, and a change left unconfirmed that rolls
// back by itself. Screenshots (desktop and phone) go to build/ui-results/.
//
// Run: cd services/api/ui-tests && node --test network.test.mjs   (CHROMIUM overrides the browser)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { json, openScripted, ORIGIN, screenshots, ScriptedApi } from './scripted-api.mjs';

let browser;
let page;

const link = (name, extra = {}) => ({
  name, kind: 'physical', mac: '52:54:00:00:00:01', mtu: 1500, up: true, carrier: true, speed_mbps: 1000,
  duplex: 'full', addresses: [], master: null, managed: true, ...extra,
});

const state = {
  spec: {
    links: [{ name: 'ens3', dhcp: true, management: true }, { name: 'ens4', dhcp: true }, { name: 'ens5', dhcp: true }, { name: 'ens6', dhcp: true }],
    bonds: [], bridges: [], vlans: [], routes: [], dns: { servers: [], search: [] },
  },
  pending: null,
  lastRollback: null,
  status: [link('ens3', { addresses: ['10.0.2.15/24'] }), link('ens4'), link('ens5', { carrier: false }), link('ens6')],
};

/** The rules of services/net's validate.rs this test exercises, with its field paths. */
function invalid(spec) {
  const used = new Map();
  for (const [kind, key] of [['bonds', 'members'], ['bridges', 'ports']]) {
    for (const [i, b] of (spec[kind] || []).entries()) {
      for (const [j, m] of (b[key] || []).entries()) {
        if (used.has(m)) return { field: `spec.${kind}[${i}].${key}[${j}]`, message: `"${m}" is already used by ${used.get(m)}` };
        used.set(m, b.name);
      }
    }
  }
  // As services/net does for a role naming an interface it cannot use (here: a scripted
  // refusal of ens6, to see the error land under its field).
  if (spec.roles && spec.roles.replication === 'ens6') {
    return { field: 'spec.roles.replication', message: '"ens6" has no address of its own on this node' };
  }
  const subnets = ['links', 'bonds', 'vlans', 'bridges'].flatMap((k) => (spec[k] || []).flatMap((it) => it.addresses || []));
  const inSubnet = (ip, cidr) => {
    const [net, bits] = cidr.split('/');
    const n = (a) => a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
    const mask = 2 ** 32 - 2 ** (32 - Number(bits));
    return (n(ip) & mask) === (n(net) & mask);
  };
  for (const [i, r] of (spec.routes || []).entries()) {
    if (!subnets.some((c) => inSubnet(r.gateway, c))) {
      return { field: `spec.routes[${i}].gateway`, message: `${r.gateway} is not inside a subnet configured on ${r.interface || 'any interface'}` };
    }
  }
  return null;
}

function plan(spec) {
  const names = (s) => ['bonds', 'vlans', 'bridges'].flatMap((k) => (s[k] || []).map((x) => x.name));
  const before = names(state.pending ? state.pending.spec : state.spec);
  const after = names(spec);
  const created = after.filter((n) => !before.includes(n));
  const removed = before.filter((n) => !after.includes(n));
  const ops = [...removed.map((n) => ({ op: `delete ${n}`, change: 'remove', link: n })),
    ...created.map((n) => ({ op: `create ${n}`, change: 'create', link: n }))];
  return { ops, created, changed: [], removed, routes_changed: (spec.routes || []).length > 0 };
}

const view = () => ({
  spec: state.spec, configured: true, try_timeout_s: 60, last_rollback: state.lastRollback,
  pending: state.pending && {
    ...state.pending, remaining_s: Math.max(0, Math.ceil((state.pending.deadline_unix_ms - Date.now()) / 1000)),
  },
});

const api = new ScriptedApi(({ method, path: p, b }) => {
  // A change whose deadline passed is rolled back by the node.
  if (state.pending && state.pending.deadline_unix_ms <= Date.now()) {
    state.pending = null;
    state.lastRollback = { at_unix_ms: Date.now(), reason: 'the change was not confirmed within 5 s' };
  }
  if (p === '/api/v1/network' && method === 'GET') return json(200, view());
  if (p === '/api/v1/network/status') return json(200, { links: state.status, routes: [], applied_ops_total: 0, last_apply: null, pending: !!state.pending });
  if (p === '/api/v1/vms') return json(200, { resources: {}, vms: [{ name: 'web', nics: [{ bridge: 'br20', mac: '52:54:00:aa:00:01' }] }] });
  if (p === '/api/v1/network/plan') {
    const bad = invalid(b.spec);
    return bad ? json(422, { code: 'invalid', ...bad }) : json(200, plan(b.spec));
  }
  if (p === '/api/v1/network' && method === 'PUT') {
    const bad = invalid(b.spec);
    if (bad) return json(422, { code: 'invalid', ...bad });
    const timeout = b.timeout_s || 60;
    state.pending = {
      spec: b.spec, deadline_unix_ms: Date.now() + timeout * 1000, timeout_s: timeout,
      apply: { ops: plan(b.spec).ops.map((o) => o.op), netlink_ms: 3, total_ms: 9, dhcp: {} },
    };
    return json(200, view().pending);
  }
  if (p === '/api/v1/network/confirm') {
    if (!state.pending) return json(409, { code: 'nothing_pending', message: 'no network change is waiting for confirmation' });
    state.spec = state.pending.spec;
    state.pending = null;
    return json(200, { spec: state.spec });
  }
  if (p === '/api/v1/network/rollback') {
    state.pending = null;
    return json(200, { ops: [], netlink_ms: 0, total_ms: 0, dhcp: {} });
  }
  return undefined;
});
const { calls } = api;
const shot = screenshots(() => page, { prefix: 'network', height: 1100 });

before(async () => {
  ({ browser, page } = await openScripted(api, {
    script: 'import { renderNetwork } from "/ui/network.js"; import { pendingBar } from "/ui/netpending.js";'
      + ' const m = document.getElementById("m"); m.before(pendingBar().el); renderNetwork(m);',
    stylesheet: true,
  }));
  await page.goto(`${ORIGIN}/`);
});

after(async () => {
  await browser?.close();
});

const node = (name) => page.locator(`.topology-svg [data-node="${name}"]`);
const editor = () => page.locator('.net-editor form');
const fieldError = (name) => editor().locator(`[data-field="${name}"] .field-error`);

test('the topology shows the NICs, their carrier and the management path', async () => {
  await node('ens3').waitFor();
  assert.match(await node('ens3').getAttribute('class'), /\bmgmt\b/);
  assert.match(await node('ens3').getAttribute('class'), /carrier-up/);
  assert.match(await node('ens5').getAttribute('class'), /carrier-down/);
  assert.doesNotMatch(await node('ens4').getAttribute('class'), /\bmgmt\b/);
  assert.match(await node('ens5').textContent(), /no carrier/);
});

test('removing the management link says why it cannot be done first', async () => {
  await node('ens3').click();
  await editor().waitFor();
  assert.match(await editor().locator('h3').first().textContent(), /Link ens3/);
  await editor().locator('button', { hasText: 'Remove ens3' }).click();
  const warn = editor().locator('.card.confirm');
  await warn.waitFor();
  assert.match(await warn.textContent(), /ens3 carries the management address: removing it needs another management address first/);
  assert.equal(await warn.locator('button', { hasText: 'Remove ens3' }).count(), 0);
  await editor().locator('button', { hasText: 'Close' }).click();
});

test('bond → VLAN → bridge through the forms, errors under their fields', async () => {
  await page.locator('.net-add button', { hasText: 'Add bond' }).click();
  await editor().locator('input[name=name]').fill('bond0');
  await editor().locator('input[name=members][value=ens4]').check();
  await editor().locator('input[name=members][value=ens5]').check();
  await editor().locator('select[name=mode]').selectOption('active-backup');
  await editor().locator('select[name=primary]').selectOption('ens4');
  await editor().locator('select[name=dhcp]').selectOption('none');
  await editor().locator('button[type=submit]').click();
  await node('bond0').waitFor();
  const pending = page.locator('.pending-changes');
  await pending.waitFor();
  assert.match(await pending.locator('.plan-create').textContent(), /bond0/);

  // A member used twice: shown under Members of the second bond.
  await page.locator('.net-add button', { hasText: 'Add bond' }).click();
  await editor().locator('input[name=name]').fill('bond1');
  assert.match(await editor().locator('label', { hasText: 'ens4' }).textContent(), /in bond0/);
  await editor().locator('input[name=members][value=ens4]').check();
  await editor().locator('input[name=members][value=ens6]').check();
  await editor().locator('select[name=dhcp]').selectOption('none');
  await editor().locator('button[type=submit]').click();
  await fieldError('members').waitFor({ state: 'visible' });
  assert.equal(await fieldError('members').textContent(), '"ens4" is already used by bond0.');
  await shot('field-error');
  await editor().locator('button', { hasText: 'Close' }).click();
  assert.equal(await node('bond1').count(), 0);

  await page.locator('.net-add button', { hasText: 'Add vlan' }).click();
  await editor().locator('select[name=parent]').selectOption('bond0');
  await editor().locator('input[name=id]').fill('20');
  await editor().locator('select[name=dhcp]').selectOption('none');
  await editor().locator('button[type=submit]').click();
  await node('bond0.20').waitFor();

  await page.locator('.net-add button', { hasText: 'Add bridge' }).click();
  await editor().locator('input[name=name]').fill('br20');
  await editor().locator('input[name=ports][value="bond0.20"]').check();
  await editor().locator('select[name=dhcp]').selectOption('static');
  await editor().locator('input[name=addresses]').fill('10.20.0.2/24');
  await editor().locator('button[type=submit]').click();
  await node('br20').waitFor();
  // The VM on br20 is drawn beside it.
  await node('web').waitFor();

  // A gateway outside every subnet: under Gateway.
  await page.locator('.net-add button', { hasText: 'Add route' }).click();
  await editor().locator('input[name=destination]').fill('10.99.0.0/16');
  await editor().locator('input[name=gateway]').fill('192.0.2.1');
  await editor().locator('button[type=submit]').click();
  await fieldError('gateway').waitFor({ state: 'visible' });
  assert.match(await fieldError('gateway').textContent(), /192\.0\.2\.1 is not inside a subnet configured on any interface/);
  await editor().locator('input[name=gateway]').fill('10.20.0.1');
  await editor().locator('button[type=submit]').click();
  await page.locator('[data-route="10.99.0.0/16"]').waitFor();

  const text = await pending.textContent();
  for (const n of ['bond0', 'bond0.20', 'br20']) assert.ok(text.includes(n), text);
  const last = calls.filter((c) => c.startsWith('POST /api/v1/network/plan')).at(-1);
  const spec = JSON.parse(last.slice(last.indexOf('{'))).spec;
  assert.deepEqual(spec.bonds, [{ name: 'bond0', mode: 'active-backup', members: ['ens4', 'ens5'], miimon: 100, primary: 'ens4' }]);
  assert.deepEqual(spec.vlans, [{ name: 'bond0.20', parent: 'bond0', id: 20 }]);
  assert.deepEqual(spec.bridges, [{ name: 'br20', ports: ['bond0.20'], stp: false, addresses: ['10.20.0.2/24'] }]);
  assert.deepEqual(spec.links.find((l) => l.name === 'ens4'), { name: 'ens4' }, 'a member loses its DHCP');
  await shot('pending');
});

test('apply in try mode shows the countdown, Confirm keeps it', async () => {
  await page.locator('.pending-changes button', { hasText: 'Apply in try mode' }).click();
  const bar = page.locator('.net-bar-warning');
  await bar.waitFor();
  const count = bar.locator('.countdown');
  const first = Number(await count.getAttribute('data-seconds'));
  assert.ok(first > 50 && first <= 60, String(first));
  await page.waitForFunction((n) => Number(document.querySelector('.net-bar .countdown').dataset.seconds) < n, first, { timeout: 5000 });
  await page.locator('.pending-changes').waitFor({ state: 'detached' });
  await shot('try-mode');
  await bar.locator('button', { hasText: 'Confirm' }).click();
  await bar.waitFor({ state: 'detached' });
  assert.ok(calls.includes('POST /api/v1/network/confirm {}'), calls.join('\n'));
  assert.equal(state.spec.bridges[0].name, 'br20');
});

test('a change left unconfirmed rolls back by itself and the page says so', async () => {
  await node('br20').click();
  await editor().locator('input[name=addresses]').fill('10.20.0.3/24');
  await editor().locator('button[type=submit]').click();
  await page.locator('.pending-changes').waitFor();
  await page.locator('.pending-changes input[name=timeout_s]').fill('5');
  await page.locator('.pending-changes button', { hasText: 'Apply in try mode' }).click();
  await page.locator('.net-bar-warning').waitFor();
  const info = page.locator('.net-bar-info');
  await info.waitFor({ timeout: 15000 });
  assert.match(await info.textContent(), /rolled back by itself \(the change was not confirmed within 5 s\)/);
  assert.deepEqual(state.spec.bridges[0].addresses, ['10.20.0.2/24']);
  await shot('rolled-back');
});

test('cluster and replication networks: chosen from interfaces with an address, errors under their field', async () => {
  const form = page.locator('form.net-roles');
  const options = await form.locator('select[name=cluster] option').evaluateAll((os) => os.map((o) => o.value));
  // ens4 and ens5 are bond members without an address, bond0 and bond0.20 have none either.
  assert.deepEqual(options.sort(), ['', 'br20', 'ens3', 'ens6']);
  await form.locator('select[name=cluster]').selectOption('br20');
  await form.locator('select[name=replication]').selectOption('ens6');
  await form.locator('button[type=submit]').click();
  const err = form.locator('[data-field="replication"] .field-error');
  await err.waitFor({ state: 'visible' });
  assert.equal(await err.textContent(), '"ens6" has no address of its own on this node.');
  await form.locator('select[name=replication]').selectOption('ens3');
  await form.locator('button[type=submit]').click();
  await page.locator('.topology-svg [data-node="br20"]', { hasText: 'cluster' }).waitFor();
  const last = calls.filter((c) => c.startsWith('POST /api/v1/network/plan')).at(-1);
  assert.deepEqual(JSON.parse(last.slice(last.indexOf('{'))).spec.roles, { cluster: 'br20', replication: 'ens3' });
  await shot('roles');
});

test('the JSON stays under Advanced', async () => {
  const adv = page.locator('details.advanced');
  await adv.locator('summary').click();
  const spec = JSON.parse(await adv.locator('textarea').inputValue());
  assert.equal(spec.bridges[0].name, 'br20');
});
