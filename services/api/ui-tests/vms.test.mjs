// Browser test of vms.js (with style.css): renders the VMs page in Debian's Chromium against a
// scripted API (requests answered by the test, task progress sent on the event stream) and
// checks the list with states, live statistics (CPU %, memory, pool space) and resource use,
// the create wizard (a missing name caught
// before leaving the step; the node's 422 sent back to the step and field it names; the VM
// created as a task; an installer from the chosen pool's image library sent as a SATA CD-ROM
// booted first), an action followed through its task progress across the page's
// periodic reloads, the live serial console, and replicated disks: Replicate… disabled with
// its reason (a running VM, a standalone node), the dialog's replica choice (eligible and
// ineligible nodes, the node's 422 under the field, `{replica}` or `{}` for Automatic), the
// initial sync's progress, and each disk's state with its status words, re-read while shown;
// turning replication off: disabled with its reason while the VM runs, a refused delete
// pointing at it, the dialog's two holders (this node's copy kept, the replica's disabled with
// its reason), the node's 422 under the field, `{keep}` sent, the task's progress, and the list
// without the replication once done; moving the replica of a running VM: Move replica… beside
// Turn replication off…, the dialog listing the node holding the copy now and the ineligible
// nodes disabled with their reasons (no node eligible: said, confirm disabled), a choice
// required, the node's 422 under the field and a 503 above the buttons, `{to}` sent, the
// task's progress, then the state view and the badges naming the new node. Keeps desktop and
// 360 px phone screenshots.
//
// Run: cd services/api/ui-tests && node --test vms.test.mjs   (CHROMIUM overrides the browser,
// UI_RESULTS the screenshot folder; default <repo>/build/ui-results)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GiB, ORIGIN, ScriptedApi, json, openScripted, screenshots } from './scripted-api.mjs';

let browser;
let page;

const vm = (name, st, extra = {}) => ({
  name, uuid: `uuid-${name}`, vcpus: 1, memory_mib: 512, cpu_model: 'host-model', machine: 'q35', autostart: false,
  boot: ['hd'], snapshots: {}, nics: [{ bridge: 'br0', mac: '52:54:00:00:00:01', model: 'virtio' }],
  disks: [{ kind: 'disk', pool: 'tank', volume: `${name}-disk0`, bus: 'virtio', origin: null }],
  state: st, ...extra,
});

const stats = (cpu, rss) => ({
  sampled_at_unix_ms: 1700000000000, cpu_percent: cpu, vcpus: 2, memory_bytes: 1024 * 1048576,
  memory_rss_bytes: rss, disks: [{ index: 0, read_bytes: 4096, written_bytes: 0 }],
});

const state = {
  vms: [vm('web', 'running', { vcpus: 2, memory_mib: 1024, autostart: true, stats: stats(12.5, 300 * 1048576), disk_allocated_bytes: 2.5 * GiB }),
    vm('db', 'shut_off', { stats: null, disk_allocated_bytes: null })],
  creates: [],
  cluster: { mode: 'member', this_node: 'node1', cluster: { name: 'prod' }, quorum: null, nodes: [], failover: null },
  // GET /api/v1/vms/app/replication's disks.
  replication: [],
  // The refusal the next DELETE /api/v1/vms/app/replication answers (then a task).
  unreplicateRefusal: null,
  // GET /api/v1/vms/ha/targets's targets and GET /api/v1/vms/ha/replication's disks.
  haTargets: [],
  haReplication: [],
  // The refusal the next POST /api/v1/vms/ha/replication/move answers (then a task).
  moveRefusal: null,
};

/** A replicated disk's state as GET …/replication gives it (healthy unless `extra` says). */
const replicaState = (disk, resource, extra = {}) => ({
  disk, resource, replica: 'node2', role: 'Secondary', peer_role: 'Secondary', connection: 'Connected',
  disk_state: 'UpToDate', peer_disk_state: 'UpToDate', sync_percent: null, out_of_sync_bytes: 0,
  io_frozen: false, healthy: true, ...extra,
});

const TARGETS = [
  { node: 'node2', eligible: true },
  { node: 'node3', eligible: false, reason: 'node3 has no bridge br0, which the VM uses: add it to node3\'s network or pick another node' },
  { node: 'w', eligible: false, reason: 'w is a witness: it runs no VMs' }];

function resources() {
  const running = state.vms.filter((v) => v.state === 'running');
  const sum = (l, k) => l.reduce((a, v) => a + v[k], 0);
  return {
    accelerator: 'tcg', libvirt_connected: true, cpus: 4, memory_mib: 7680,
    vcpus_running: sum(running, 'vcpus'), memory_running_mib: sum(running, 'memory_mib'),
    vcpus_defined: sum(state.vms, 'vcpus'), memory_defined_mib: sum(state.vms, 'memory_mib'),
    memory_free_mib: 7680 - 1024 - sum(running, 'memory_mib'),
  };
}

// The console stream answers one block of two lines (joined with \n by EventSource) and
// asks for no reconnect within the test.
const CONSOLE = 'retry: 600000\n\nevent: console\ndata: cairn-guest: boot\ndata: cairn-guest: heartbeat 1\ndata: \n\n';

const api = new ScriptedApi(({ method, path: p, b }) => {
  if (p === '/api/v1/vms' && method === 'GET') return json(200, { vms: state.vms, resources: resources() });
  if (p === '/api/v1/pools') return json(200, { pools: [{ name: 'tank' }, { name: 'fast' }] });
  if (p === '/api/v1/pools/tank/images') return json(200, { images: [], uploads: [] });
  if (p === '/api/v1/pools/fast/images') {
    return json(200, { images: [{ name: 'debian-12.iso', size_bytes: 630 * 1048576, format: 'iso' }],
      uploads: [{ id: '0a1', name: 'half.iso', size_bytes: 4096, sha256: null, pool: 'fast', offset: 512 }] });
  }
  if (p === '/api/v1/vms' && method === 'POST') {
    state.creates.push(b);
    if (b.disks[0].size_bytes > 4 * GiB) {
      return json(422, { code: 'invalid', message: 'larger than pool tank can hold (about 4.0 GiB free)', field: 'disks[0].size_bytes' });
    }
    return json(202, api.task(30, 'vm.create', `creating VM ${b.name}`));
  }
  if (p === '/api/v1/vms/db/start') return json(202, api.task(31, 'vm.start', 'starting VM db'));
  if (p === '/api/v1/vms/web/targets') return json(200, { vm: 'web', bridges: ['br0'], targets: TARGETS });
  if (p === '/api/v1/vms/app/targets') return json(200, { vm: 'app', bridges: ['br0'], targets: TARGETS });
  if (p === '/api/v1/cluster') return json(200, state.cluster);
  if (p === '/api/v1/vms/app/replication' && method === 'GET') return json(200, { vm: 'app', disks: state.replication });
  if (p === '/api/v1/vms/app/replication' && method === 'POST') {
    if (b.replica === 'node2') {
      return json(422, { code: 'invalid', field: 'replica', message: 'node2 has 1.0 GiB free on its pools; the disks of app need 12.0 GiB' });
    }
    return json(202, api.task(40, 'vm.replicate', 'turn replication on for VM app'));
  }
  if (p === '/api/v1/vms/app/replication' && method === 'DELETE') {
    const refusal = state.unreplicateRefusal;
    state.unreplicateRefusal = null;
    if (refusal) return json(refusal.status, refusal.body);
    return json(202, api.task(41, 'vm.unreplicate', `turn replication off for VM app, keeping ${b.keep}'s copy`));
  }
  if (p === '/api/v1/vms/app' && method === 'DELETE') {
    return json(409, { code: 'wrong_state', message: 'VM app is replicated: its disks have a copy on another node: turn replication off first' });
  }
  if (p === '/api/v1/vms/db/targets') return json(200, { vm: 'db', bridges: ['br0'], targets: [] });
  if (p === '/api/v1/vms/ha/targets') return json(200, { vm: 'ha', bridges: ['br0'], targets: state.haTargets });
  if (p === '/api/v1/vms/ha/replication' && method === 'GET') return json(200, { vm: 'ha', disks: state.haReplication });
  if (p === '/api/v1/vms/ha/replication/move' && method === 'POST') {
    const refusal = state.moveRefusal;
    state.moveRefusal = null;
    if (refusal) return json(refusal.status, refusal.body);
    return json(202, api.task(42, 'vm.replica.move', `move VM ha's replica to ${b.to}`));
  }
  if (p === '/api/v1/vms/web/console/stream') return { status: 200, contentType: 'text/event-stream', body: CONSOLE };
  const t = p.match(/^\/api\/v1\/tasks\/(\d+)$/);
  if (t && api.tasks[t[1]]) return json(200, api.tasks[t[1]]);
  return undefined;
}, { events: true });
const { calls } = api;
const progress = (...a) => api.progress(...a);

const shot = screenshots(() => page, { prefix: 'vms' });

const card = (name) => page.locator(`[data-vm="${name}"]`);
const wizard = () => page.locator('form[data-form="vm-create"]');

before(async () => {
  ({ browser, page } = await openScripted(api, {
    stylesheet: true,
    viewport: { width: 1280, height: 900 },
    script: 'import { renderVms } from "/ui/vms.js"; import { connect } from "/ui/events.js";'
      + ' connect(); renderVms(document.getElementById("m"));',
  }));
  await page.goto(`${ORIGIN}/`);
});

after(async () => {
  await browser?.close();
});

test('the list shows each VM with its state and the resources running VMs use', async () => {
  await card('web').waitFor();
  assert.match(await card('web').textContent(), /web\s*Running.*2 vCPU · 1024 MiB · host-model · q35 · autostart.*disk tank\/web-disk0/s);
  assert.equal(await card('web').getAttribute('data-state'), 'running');
  assert.match(await card('db').textContent(), /db\s*Off/);
  // Live statistics of the running VM; none for the stopped one.
  const live = card('web').locator('[data-stats]');
  assert.equal((await live.locator('[data-stat="cpu"]').textContent()).trim(), 'CPU 12.5 %');
  assert.match(await live.locator('[data-stat="cpu"]').getAttribute('title'), /of 2 vCPUs/);
  assert.equal((await live.locator('[data-stat="memory"]').textContent()).trim(), 'memory 300.0 MiB used');
  assert.match(await live.locator('[data-stat="memory"]').getAttribute('title'), /guest memory 1\.0 GiB/);
  assert.equal((await live.locator('[data-stat="disk"]').textContent()).trim(), 'disk 2.5 GiB allocated');
  const idle = card('db').locator('[data-stats]');
  assert.equal((await idle.locator('[data-stat="cpu"]').textContent()).trim(), 'not running');
  assert.equal(await idle.locator('[data-stat="memory"]').count(), 0);
  assert.equal(await idle.locator('[data-stat="disk"]').count(), 0);
  // Running VMs offer shut down / power off; a stopped one offers start and delete.
  assert.ok(await card('web').locator('[data-action="Shut down"]').isVisible());
  assert.ok(await card('db').locator('[data-action="Start"]').isVisible());
  const res = page.locator('[data-resources]');
  assert.match(await res.textContent(), /TCG \(emulation/);
  assert.match(await res.locator('[data-meter="vCPUs running"]').textContent(), /2 \/ 4 CPUs/);
  assert.match(await res.locator('[data-meter="Memory running"]').textContent(), /1024 \/ 7680 MiB/);
  assert.equal(await res.locator('[data-meter="vCPUs running"] [role=progressbar]').getAttribute('aria-valuenow'), '50');
  await shot('list');
});

test('the statistics follow the list\'s reloads: the first sample has no CPU use yet', async () => {
  const web = state.vms.find((v) => v.name === 'web');
  web.stats = stats(null, null);
  const cpu = card('web').locator('[data-stat="cpu"]');
  await page.waitForFunction(() => document.querySelector('[data-vm="web"] [data-stat="cpu"]')?.textContent.trim() === 'CPU …');
  // Without the QEMU process's resident memory, the guest's memory is shown.
  assert.equal((await card('web').locator('[data-stat="memory"]').textContent()).trim(), 'memory 1.0 GiB');
  web.stats = stats(87, 900 * 1048576);
  await page.waitForFunction(() => document.querySelector('[data-vm="web"] [data-stat="cpu"]')?.textContent.trim() === 'CPU 87.0 %');
  assert.equal((await card('web').locator('[data-stat="memory"]').textContent()).trim(), 'memory 900.0 MiB used');
  assert.ok(await cpu.isVisible());
});

test('the create wizard checks each step and sends the node\'s 422 back to the field it names', async () => {
  await page.getByRole('button', { name: 'New VM' }).click();
  const form = wizard();
  await form.waitFor();
  assert.equal((await form.locator('.step-count').textContent()).trim(), 'Step 1 of 5 · Machine');
  // Next without a name: the error is under Name and the wizard stays on the step.
  await form.getByRole('button', { name: 'Next' }).click();
  const nameField = form.locator('[data-field="name"]');
  assert.match(await nameField.locator('.field-error').textContent(), /A name is required/);
  assert.equal(await nameField.locator('input').getAttribute('aria-invalid'), 'true');
  assert.equal(calls.filter((c) => c.startsWith('POST /api/v1/vms ')).length, 0);
  await form.getByLabel('Name').fill('web2');
  await form.getByLabel('vCPUs').fill('2');
  await form.getByRole('button', { name: 'Next' }).click();
  assert.equal((await form.locator('.step-count').textContent()).trim(), 'Step 2 of 5 · Disk');
  // The pools come from the node.
  assert.deepEqual(await form.getByLabel('Pool').locator('option').allTextContents(), ['tank', 'fast']);
  await form.getByLabel('Disk size (GiB)').fill('500');
  await form.getByRole('button', { name: 'Next' }).click();
  // Pool tank's library is empty: no installer, said in words.
  assert.equal((await form.locator('.step-count').textContent()).trim(), 'Step 3 of 5 · Installer');
  await page.waitForFunction(() => /library is empty/.test(document.querySelector('[data-library-note]')?.textContent || ''));
  assert.deepEqual(await form.getByLabel('Boot an installer from the image library').locator('option').allTextContents(), ['None: boot from the new disk']);
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByLabel('Bridge for a NIC').fill('br0');
  await form.getByRole('button', { name: 'Next' }).click();
  assert.equal((await form.locator('.step-count').textContent()).trim(), 'Step 5 of 5 · Review');
  const review = await form.locator('dl.review').textContent();
  assert.match(review, /web2.*2 vCPU · 512 MiB · q35.*500 GiB on pool tank \(virtio\).*Installer\s*none.*a NIC on br0/s);
  await form.getByRole('button', { name: 'Create VM' }).click();
  // The node refuses the size: back on the disk step, the message under the size field.
  const sizeField = form.locator('[data-field="disks[0].size_bytes"]');
  await sizeField.locator('.field-error').waitFor({ state: 'visible' });
  assert.equal((await form.locator('.step-count').textContent()).trim(), 'Step 2 of 5 · Disk');
  assert.match(await sizeField.locator('.field-error').textContent(), /Larger than pool tank can hold/i);
  assert.equal(await sizeField.locator('input').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement?.name), 'disks[0].size_bytes');
  await shot('wizard-error');
  await form.getByLabel('Disk size (GiB)').fill('2');
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByRole('button', { name: 'Create VM' }).click();
  const line = page.locator('.task-inline[data-task="30"]');
  await line.waitFor();
  const sent = state.creates.at(-1);
  assert.deepEqual(sent, {
    name: 'web2', vcpus: 2, memory_mib: 512, machine: 'q35', autostart: false,
    disks: [{ source: 'new', pool: 'tank', size_bytes: 2 * GiB, bus: 'virtio' }],
    nics: [{ bridge: 'br0' }],
  });
  state.vms.push(vm('web2', 'shut_off', { vcpus: 2 }));
  progress(30, 100, 'succeeded', 'VM web2 created');
  await line.locator('.pct', { hasText: '100 %' }).waitFor();
  await card('web2').waitFor();
});

test('the wizard offers the chosen pool\'s library images and sends the installer as a CD-ROM booted first', async () => {
  await page.getByRole('button', { name: 'New VM' }).click();
  const form = wizard();
  await form.waitFor();
  await form.getByLabel('Name').fill('inst');
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByLabel('Pool').selectOption('fast');
  await form.getByLabel('Disk size (GiB)').fill('3');
  await form.getByRole('button', { name: 'Next' }).click();
  const iso = form.getByLabel('Boot an installer from the image library');
  // The images of pool fast (not its unfinished upload).
  await form.locator('option[value="debian-12.iso"]').waitFor({ state: 'attached' });
  assert.deepEqual(await iso.locator('option').allTextContents(), ['None: boot from the new disk', 'debian-12.iso (630.0 MiB)']);
  assert.match(await form.locator('[data-library-note]').textContent(), /pool fast's library/);
  await iso.selectOption('debian-12.iso');
  await shot('wizard-installer');
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByRole('button', { name: 'Next' }).click();
  assert.match(await form.locator('dl.review').textContent(), /Installer\s*debian-12\.iso as a CD-ROM \(sata\), booted first/);
  const n = state.creates.length;
  await form.getByRole('button', { name: 'Create VM' }).click();
  // Created: the wizard gives way to the task's line.
  await form.waitFor({ state: 'detached' });
  assert.equal(state.creates.length, n + 1);
  const sent = state.creates.at(-1);
  assert.deepEqual(sent, {
    name: 'inst', vcpus: 1, memory_mib: 512, machine: 'q35', autostart: false,
    disks: [
      { source: 'new', pool: 'fast', size_bytes: 3 * GiB, bus: 'virtio' },
      { source: 'iso', pool: 'fast', share: 'images', file: 'debian-12.iso', bus: 'sata' }],
    nics: [],
    boot: ['cdrom', 'disk'],
  });
});

test('an action runs as a task whose progress stays on the VM across the page\'s reloads', async () => {
  await card('db').locator('[data-action="Start"]').click();
  const line = card('db').locator('.task-inline[data-task="31"]');
  await line.waitFor();
  progress(31, 40);
  await line.locator('.pct', { hasText: '40 %' }).waitFor();
  // The list reloads every 3 s; the running task's line must survive it.
  const loads = () => calls.filter((c) => c === 'GET /api/v1/vms').length;
  const before = loads();
  await page.waitForTimeout(3500);
  assert.ok(loads() > before, 'the list was reloaded');
  assert.match(await card('db').locator('.task-inline .pct').textContent(), /40 %/);
  await shot('action-progress');
  state.vms.find((v) => v.name === 'db').state = 'running';
  progress(31, 100, 'succeeded', 'VM db started');
  await page.waitForFunction(() => document.querySelector('[data-vm="db"]')?.dataset.state === 'running');
  assert.match(await card('db').textContent(), /Running/);
  // Just started: no sample yet, but not "not running" either.
  assert.equal((await card('db').locator('[data-stat="cpu"]').textContent()).trim(), 'CPU …');
  assert.match(await card('db').locator('.task-inline').textContent(), /VM db started.*100 %/s);
});

test('the console shows the VM\'s serial output live and closes', async () => {
  await card('web').locator('[data-action="Console"]').click();
  const pre = card('web').locator('pre.console[data-console="web"]');
  await pre.waitFor();
  await page.waitForFunction(() => /heartbeat 1/.test(document.querySelector('pre.console')?.textContent || ''));
  assert.equal(await pre.textContent(), 'cairn-guest: boot\ncairn-guest: heartbeat 1\n');
  assert.equal(await pre.evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(17, 17, 17)');
  // The console stays open while the list reloads around it.
  await page.waitForTimeout(3500);
  assert.ok(await pre.isVisible(), 'the console was dropped by a reload');
  assert.equal(calls.filter((c) => c === 'GET /api/v1/vms/web/console/stream').length, 1);
  await shot('console');
  await card('web').locator('[data-action="Close console"]').click();
  assert.equal(await page.locator('pre.console').count(), 0);
});

test('other nodes: which nodes could take the VM, and why the others could not', async () => {
  await card('web').locator('[data-action="Other nodes"]').click();
  const list = card('web').locator('[data-targets="web"]');
  await list.waitFor();
  assert.match(await list.textContent(), /Other nodes for web \(it uses br0\)/);
  assert.equal(await list.locator('[data-target="node2"]').getAttribute('data-eligible'), 'true');
  assert.match(await list.locator('[data-target="node2"]').textContent(), /node2 — can take this VM/);
  assert.match(await list.locator('[data-target="node3"]').textContent(), /node3 has no bridge br0, which the VM uses/);
  assert.equal(await list.locator('[data-target="w"]').getAttribute('data-eligible'), 'false');
  await shot('targets');
  // A standalone node: no other node, said in words.
  await card('db').locator('[data-action="Other nodes"]').click();
  await card('db').locator('[data-targets="db"]').waitFor();
  assert.match(await card('db').locator('[data-targets="db"]').textContent(), /not in a cluster with other nodes/);
});

/** Wait until `cond()` holds, checking every 50 ms, at most `ms` (then fail naming `what`). */
async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => { setTimeout(r, 50); });
  }
}

const listLoads = () => calls.filter((c) => c === 'GET /api/v1/vms').length;
const replicationReads = () => calls.filter((c) => c === 'GET /api/v1/vms/app/replication').length;
/** The status words of `disk` in the open replication table. */
const statusOf = (disk) => card('app').locator(`[data-replication="app"] tr[data-disk="${disk}"] [data-status]`);

test('replication: Replicate… is disabled with the reason while the VM runs', async () => {
  const b = card('web').locator('[data-action="Replicate…"]');
  await b.waitFor();
  assert.ok(await b.isDisabled());
  assert.equal((await card('web').locator('[data-replicate-why="web"]').textContent()).trim(), 'Shut the VM down to turn replication on.');
  assert.equal(await b.getAttribute('aria-describedby'), 'replicate-why-web');
  // A shut-off VM on a member may.
  assert.ok(await card('web2').locator('[data-action="Replicate…"]').isEnabled());
  assert.equal(await card('web2').locator('[data-replicate-why]').count(), 0);
});

test('the Replicate dialog offers the eligible nodes, shows why the others cannot, and follows the initial sync', async () => {
  const disk = (i) => ({ kind: 'disk', pool: 'tank', volume: `app-disk${i}`, path: `/dev/tank/app-disk${i}`, bus: 'virtio', origin: null });
  state.vms.push(vm('app', 'shut_off', { disks: [disk(0), disk(1), disk(2)], stats: null, disk_allocated_bytes: null }));
  await card('app').waitFor();
  await card('app').locator('[data-action="Replicate…"]').click();
  const form = card('app').locator('form[data-form="replicate"]');
  await form.waitFor();
  const choice = (node) => form.locator(`[data-replica="${node}"]`);
  // Automatic is the default; node2 can hold the copies; node3 and the witness cannot, with why.
  assert.ok(await choice('automatic').locator('input').isChecked());
  assert.match(await choice('automatic').textContent(), /^Automatic: the node with the most free space$/);
  assert.ok(await choice('node2').locator('input').isEnabled());
  assert.match(await choice('node2').textContent(), /node2: can hold the copies/);
  assert.ok(await choice('node3').locator('input').isDisabled());
  assert.match(await choice('node3').textContent(), /node3 has no bridge br0, which the VM uses/);
  assert.ok(await choice('w').locator('input').isDisabled());
  assert.match(await choice('w').textContent(), /w is a witness: it runs no VMs/);
  const text = await form.textContent();
  assert.match(text, /Each of its 3 disks \(tank\/app-disk0, tank\/app-disk1, tank\/app-disk2\) gets a synchronous copy on the chosen node/);
  assert.match(text, /app must stay shut down until the copies are set up, and the initial sync copies each whole disk/);
  await shot('replicate-dialog');

  // node2 is refused by the node (not enough room): the reason under Replica node.
  await choice('node2').locator('input').check();
  await form.getByRole('button', { name: 'Replicate' }).click();
  const error = form.locator('[data-field="replica"] .field-error');
  await error.waitFor({ state: 'visible' });
  assert.equal((await error.textContent()).trim(), 'Node2 has 1.0 GiB free on its pools; the disks of app need 12.0 GiB.');
  assert.ok(calls.includes('POST /api/v1/vms/app/replication {"replica":"node2"}'));

  // Automatic sends no replica; the task's progress replaces the dialog.
  await choice('automatic').locator('input').check();
  await form.getByRole('button', { name: 'Replicate' }).click();
  const line = card('app').locator('.task-inline[data-task="40"]');
  await line.waitFor();
  assert.equal(calls.filter((c) => c.startsWith('POST /api/v1/vms/app/replication')).at(-1), 'POST /api/v1/vms/app/replication {}');
  progress(40, 34, 'running', 'initial sync to node2: 34.5 % of 256 MiB at 30.0 MiB/s, 5 s left');
  await line.locator('.pct', { hasText: '34 %' }).waitFor();
  assert.match(await line.textContent(), /Initial sync to node2: 34\.5 % of 256 MiB at 30\.0 MiB\/s, 5 s left\./);
  // While it runs, Replicate… says why it cannot be used again (after the next reload).
  await card('app').locator('[data-replicate-why="app"]').waitFor();
  assert.match(await card('app').locator('[data-replicate-why="app"]').textContent(), /Replication is being turned on/);
  assert.ok(await card('app').locator('[data-action="Replicate…"]').isDisabled());
  await shot('replicate-progress');

  // Done: the disks are replicated; their state opens under the task's last line.
  const app = state.vms.find((v) => v.name === 'app');
  app.disks.forEach((d, i) => Object.assign(d, { path: `/dev/drbd${i}`, replication: { resource: `cairn${i}`, replica: 'node2' } }));
  state.replication = [
    replicaState('disk0', 'cairn0'),
    replicaState('disk1', 'cairn1', { connection: 'SyncSource', peer_disk_state: 'Inconsistent', sync_percent: 34.5, out_of_sync_bytes: 168 * 1048576, healthy: false }),
    replicaState('disk2', 'cairn2', { connection: 'WFConnection', peer_role: 'Unknown', peer_disk_state: 'DUnknown', out_of_sync_bytes: 3 * 1048576, healthy: false }),
  ];
  progress(40, 100, 'succeeded', 'VM app: disk0 (cairn0), disk1 (cairn1), disk2 (cairn2) replicated on node2');
  await card('app').locator('[data-replication="app"] table').waitFor();
  assert.match(await line.textContent(), /VM app: disk0 \(cairn0\), disk1 \(cairn1\), disk2 \(cairn2\) replicated on node2.*100 %/s);
});

test('each replicated disk\'s state: status words, re-read while shown, no more once closed', async () => {
  const view = card('app').locator('[data-replication="app"]');
  assert.equal((await statusOf('disk0').textContent()).trim(), 'Both copies up to date');
  assert.equal((await statusOf('disk1').textContent()).trim(), 'Syncing 34 %');
  assert.equal((await statusOf('disk2').textContent()).trim(), 'Other copy not connected — only this copy is current');
  const cells = async (disk) => (await view.locator(`tr[data-disk="${disk}"] td`).allTextContents()).map((t) => t.trim());
  assert.deepEqual(await cells('disk1'), ['disk1 cairn1', 'Syncing 34 %', 'node2', 'Secondary', 'SyncSource', 'UpToDate', 'Inconsistent', '34.5 %', '168.0 MiB']);
  assert.deepEqual(await cells('disk2'), ['disk2 cairn2', 'Other copy not connected — only this copy is current', 'node2', 'Secondary', 'WFConnection', 'UpToDate', 'DUnknown', '—', '3.0 MiB']);
  assert.equal((await cells('disk0'))[8], '0 B');
  assert.equal(await statusOf('disk0').getAttribute('data-status'), 'ok');
  assert.equal(await statusOf('disk2').getAttribute('data-status'), 'warning');
  // The list marks each replicated disk; Replication replaces Replicate….
  const badges = card('app').locator('[data-disks] [data-replicated]');
  await page.waitForFunction(() => document.querySelectorAll('[data-vm="app"] [data-disks] [data-replicated]').length === 3, null, { timeout: 10000 });
  assert.deepEqual((await badges.allTextContents()).map((t) => t.trim()), ['replicated on node2', 'replicated on node2', 'replicated on node2']);
  assert.match(await badges.first().getAttribute('title'), /DRBD resource cairn0 \(\/dev\/drbd0\)/);
  assert.equal(await card('app').locator('[data-action="Replicate…"]').count(), 0);
  assert.ok(await card('app').locator('[data-action="Replication"]').isVisible());
  await shot('replication');

  // Re-read while shown (and kept across the list's reloads): the sync ends, the
  // disconnected copy's I/O freezes.
  state.replication[1] = replicaState('disk1', 'cairn1');
  state.replication[2] = replicaState('disk2', 'cairn2', { role: 'Primary', connection: 'WFConnection', peer_role: 'Unknown', peer_disk_state: 'DUnknown', io_frozen: true, healthy: false });
  await page.waitForFunction(() => document.querySelector('[data-replication="app"] tr[data-disk="disk2"] [data-status]')?.textContent === 'I/O frozen: waiting for the cluster', null, { timeout: 10000 });
  assert.equal((await statusOf('disk1').textContent()).trim(), 'Both copies up to date');
  assert.equal(await statusOf('disk2').getAttribute('data-status'), 'critical');
  // A resource that is not up on this node.
  state.replication[0] = replicaState('disk0', 'cairn0', { role: null, peer_role: null, connection: null, disk_state: null, peer_disk_state: null, healthy: false });
  await page.waitForFunction(() => document.querySelector('[data-replication="app"] tr[data-disk="disk0"] [data-status]')?.textContent === 'Not up on this node', null, { timeout: 10000 });
  assert.deepEqual((await cells('disk0')).slice(3, 7), ['—', '—', '—', '—']);

  // Closed: no more reads, while the list goes on reloading.
  await card('app').locator('[data-action="Close replication"]').click();
  assert.equal(await view.count(), 0);
  // (A read already on its way when Close was clicked is done by the next reload.)
  let loads = listLoads();
  await until(() => listLoads() > loads, 10000, 'a reload of the list');
  let reads = replicationReads();
  loads = listLoads();
  await until(() => listLoads() >= loads + 2, 10000, 'two more reloads of the list');
  assert.equal(replicationReads(), reads, 'the replication state was read after Close');

  // Opened again, then replaced by another action of the VM: that stops it too.
  await card('app').locator('[data-action="Replication"]').click();
  await view.locator('table').waitFor();
  await card('app').locator('[data-action="Other nodes"]').click();
  await card('app').locator('[data-targets="app"]').waitFor();
  loads = listLoads();
  await until(() => listLoads() > loads, 10000, 'a reload of the list');
  reads = replicationReads();
  loads = listLoads();
  await until(() => listLoads() >= loads + 2, 10000, 'two reloads of the list');
  assert.equal(replicationReads(), reads, 'the replication state was read after another action replaced it');
});

test('on a standalone node Replicate… says a cluster is needed', async () => {
  state.cluster = { mode: 'standalone', this_node: 'node1', cluster: null, quorum: null, nodes: [], failover: null };
  await page.goto(`${ORIGIN}/`);
  await card('web2').waitFor();
  for (const name of ['web2', 'web']) {
    assert.ok(await card(name).locator('[data-action="Replicate…"]').isDisabled(), name);
    assert.equal((await card(name).locator(`[data-replicate-why="${name}"]`).textContent()).trim(),
      'This node is not in a cluster: create or join one on the Cluster page to replicate disks.');
  }
  // Replicated disks keep their state view.
  assert.ok(await card('app').locator('[data-action="Replication"]').isEnabled());
});

/** The open replication view of app, and its Turn replication off… action. */
const appView = () => card('app').locator('[data-replication="app"]');
const offButton = () => appView().locator('[data-action="Turn replication off…"]');
const unreplicateForm = () => card('app').locator('form[data-form="unreplicate"]');

test('Turn replication off… is in the replication view, disabled with the reason while the VM runs', async () => {
  state.cluster = { mode: 'member', this_node: 'node1', cluster: { name: 'prod' }, quorum: null, nodes: [], failover: null };
  state.replication = ['disk0', 'disk1', 'disk2'].map((d, i) => replicaState(d, `cairn${i}`, { role: 'Primary' }));
  const app = state.vms.find((v) => v.name === 'app');
  app.state = 'running';
  await page.goto(`${ORIGIN}/`);
  await card('app').locator('[data-action="Replication"]').click();
  await appView().locator('table').waitFor();
  assert.ok(await offButton().isDisabled());
  const why = card('app').locator('[data-unreplicate-why="app"]');
  assert.equal((await why.textContent()).trim(), 'Shut the VM down to turn replication off.');
  assert.ok(await why.isVisible());
  assert.equal(await offButton().getAttribute('aria-describedby'), 'unreplicate-why-app');
  await shot('unreplicate-running');
  // Shut down: the view follows the list's next reload, and the action may be used.
  app.state = 'shut_off';
  await page.waitForFunction(() => document.querySelector('[data-replication="app"] [data-action="Turn replication off…"]')?.disabled === false, null, { timeout: 10000 });
  assert.ok(await why.isHidden());
  assert.equal(await offButton().getAttribute('aria-describedby'), null);
});

test('a delete refused because the disks are replicated points at Turn replication off…', async () => {
  await card('app').locator('[data-action="Delete"]').click();
  const f = card('app').locator('form.inline-form');
  await f.getByLabel('Type app to delete this VM').fill('app');
  await f.getByRole('button', { name: 'Delete' }).click();
  const banner = f.locator('.form-error');
  await banner.waitFor({ state: 'visible' });
  // The node's words, as the page shows every refusal, and the action right under them.
  assert.equal((await banner.textContent()).trim(), 'VM app is replicated: its disks have a copy on another node: turn replication off first.');
  const hint = f.locator('[data-delete-hint="app"]');
  assert.match(await hint.textContent(), /app can be deleted once its replication is off:\s*Turn replication off…/);
  await shot('delete-replicated');
  await hint.getByRole('button', { name: 'Turn replication off…' }).click();
  await unreplicateForm().waitFor();
  // Cancel goes back to the disks' state, where the action is.
  await unreplicateForm().getByRole('button', { name: 'Cancel' }).click();
  await appView().locator('table').waitFor();
  assert.equal(await unreplicateForm().count(), 0);
});

test('the Turn replication off dialog keeps this node\'s copy, follows the task and the list loses the replication', async () => {
  await offButton().click();
  const form = unreplicateForm();
  await form.waitFor();
  // Opening it stops the state view's reads (the dialog took the VM's line).
  assert.equal(await appView().count(), 0);
  const holder = (node) => form.locator(`[data-keep="${node}"]`);
  // This node's copy is the choice; the replica's is shown, disabled, with why.
  assert.ok(await holder('node1').locator('input').isChecked());
  assert.ok(await holder('node1').locator('input').isEnabled());
  assert.equal((await holder('node1').textContent()).trim(), 'node1: keep this node\'s copy: the VM stays here');
  assert.ok(await holder('node2').locator('input').isDisabled());
  assert.equal((await holder('node2').textContent()).trim(), 'node2: keeping node2\'s copy would move the VM there: not possible yet');
  assert.equal(await form.locator('input[name="keep"]').count(), 2);
  assert.equal((await form.locator('legend').textContent()).trim(), 'Copy to keep');
  // What happens, plainly.
  const said = await form.locator('[data-consequence]').textContent();
  assert.match(said, /^The copy on node2 of each of its 3 replicated disks \(disk0 \(tank\/app-disk0\), disk1 \(tank\/app-disk1\), disk2 \(tank\/app-disk2\)\) is deleted\./);
  assert.match(said, /From then on, app runs from this node's copy alone: with no second copy, it cannot fail over to another node if node1 fails\./);
  assert.equal(await page.evaluate(() => document.activeElement?.value), 'node1');
  await shot('unreplicate-dialog');

  // The node refuses (this node's copy is behind): the reason under Copy to keep.
  state.unreplicateRefusal = { status: 422, body: { code: 'invalid', field: 'keep', message: 'this node\'s copy of disk0 is Outdated: keeping it would lose data; wait for the resync' } };
  await form.getByRole('button', { name: 'Turn replication off' }).click();
  const error = form.locator('[data-field="keep"] .field-error');
  await error.waitFor({ state: 'visible' });
  assert.equal((await error.textContent()).trim(), 'This node\'s copy of disk0 is Outdated: keeping it would lose data; wait for the resync.');
  assert.equal(await holder('node1').locator('input').getAttribute('aria-invalid'), 'true');
  assert.equal(calls.filter((c) => c.startsWith('DELETE /api/v1/vms/app/replication')).at(-1), 'DELETE /api/v1/vms/app/replication {"keep":"node1"}');
  await shot('unreplicate-error');

  // A 409 that names no field goes above the buttons.
  state.unreplicateRefusal = { status: 409, body: { code: 'wrong_state', message: 'VM app is running: shut it down to turn replication off' } };
  await form.getByRole('button', { name: 'Turn replication off' }).click();
  const banner = form.locator('.form-error');
  await banner.waitFor({ state: 'visible' });
  assert.equal((await banner.textContent()).trim(), 'VM app is running: shut it down to turn replication off.');
  assert.ok(await error.isHidden());

  // Accepted: the task's progress replaces the dialog.
  const sent = calls.filter((c) => c.startsWith('DELETE /api/v1/vms/app/replication')).length;
  await form.getByRole('button', { name: 'Turn replication off' }).click();
  const line = card('app').locator('.task-inline[data-task="41"]');
  await line.waitFor();
  const deletes = calls.filter((c) => c.startsWith('DELETE /api/v1/vms/app/replication'));
  assert.equal(deletes.length, sent + 1);
  assert.equal(deletes.at(-1), 'DELETE /api/v1/vms/app/replication {"keep":"node1"}');
  progress(41, 30, 'running', 'the VM opens its volumes again');
  await line.locator('.pct', { hasText: '30 %' }).waitFor();
  assert.match(await line.textContent(), /The VM opens its volumes again\./);
  // Meanwhile the state view cannot be opened over the progress, said in words.
  await card('app').locator('[data-replicate-why="app"]').waitFor();
  assert.equal((await card('app').locator('[data-replicate-why="app"]').textContent()).trim(), 'Replication is being turned off: the progress is shown below.');
  assert.ok(await card('app').locator('[data-action="Replication"]').isDisabled());
  progress(41, 60, 'running', 'this node\'s side is down; node2 removes its copy');
  await line.locator('.pct', { hasText: '60 %' }).waitFor();
  await shot('unreplicate-progress');

  // Done: the disks open their volumes again; the list drops the badges and the action.
  const app = state.vms.find((v) => v.name === 'app');
  app.disks.forEach((d, i) => {
    d.path = `/dev/tank/app-disk${i}`;
    delete d.replication;
  });
  state.replication = [];
  progress(41, 100, 'succeeded', 'replication of VM app is off: this node\'s copy kept, node2\'s removed');
  await line.locator('.pct', { hasText: '100 %' }).waitFor();
  assert.match(await line.textContent(), /Replication of VM app is off: this node's copy kept, node2's removed\./);
  await card('app').locator('[data-action="Replicate…"]').waitFor({ timeout: 10000 });
  assert.equal(await card('app').locator('[data-disks] [data-replicated]').count(), 0);
  assert.equal(await card('app').locator('[data-action="Replication"]').count(), 0);
  assert.equal(await appView().count(), 0);
  assert.equal(await card('app').locator('[data-replicate-why]').count(), 0);
  assert.ok(await card('app').locator('[data-action="Replicate…"]').isEnabled());
  // The task's last line stays across the list's reloads.
  const loads = listLoads();
  await until(() => listLoads() > loads, 10000, 'a reload of the list');
  assert.ok(await line.isVisible());
  await shot('unreplicate-done');
});

/** VM ha (running, two disks replicated on node2), its open replication view and dialog. */
const haView = () => card('ha').locator('[data-replication="ha"]');
const moveButton = () => haView().locator('[data-action="Move replica…"]');
const moveForm = () => card('ha').locator('form[data-form="move-replica"]');
const moveCalls = () => calls.filter((c) => c.startsWith('POST /api/v1/vms/ha/replication/move'));
/** The replication of ha's disks on `node`, as the VM's record has it. */
const haDisk = (i, node) => ({ kind: 'disk', pool: 'tank', volume: `ha-disk${i}`, path: `/dev/drbd${5 + i}`, bus: 'virtio', origin: null,
  replication: { resource: `cairn${5 + i}`, replica: node } });

test('Move replica… is beside Turn replication off… in the state view, and may be used while the VM runs', async () => {
  state.haReplication = [0, 1].map((i) => replicaState(`disk${i}`, `cairn${5 + i}`, { role: 'Primary', peer_role: 'Secondary' }));
  state.vms.push(vm('ha', 'running', { disks: [haDisk(0, 'node2'), haDisk(1, 'node2')], stats: stats(3, 200 * 1048576), disk_allocated_bytes: GiB }));
  await card('ha').waitFor({ timeout: 10000 });
  assert.deepEqual((await card('ha').locator('[data-disks] [data-replicated]').allTextContents()).map((t) => t.trim()),
    ['replicated on node2', 'replicated on node2']);
  await card('ha').locator('[data-action="Replication"]').click();
  await haView().locator('table').waitFor();
  // Both actions in one row, Move replica… first; only turning replication off needs the VM off.
  assert.deepEqual(await haView().locator('.vm-actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action)),
    ['Move replica…', 'Turn replication off…']);
  assert.ok(await moveButton().isEnabled());
  assert.ok(await card('ha').locator('[data-move-why="ha"]').isHidden());
  assert.equal(await moveButton().getAttribute('aria-describedby'), null);
  assert.ok(await haView().locator('[data-action="Turn replication off…"]').isDisabled());
  assert.equal((await card('ha').locator('[data-unreplicate-why="ha"]').textContent()).trim(), 'Shut the VM down to turn replication off.');
  await shot('move-replica-view');
});

test('with no node that can take the copy, the Move replica dialog says so and cannot be confirmed', async () => {
  state.haTargets = [
    { node: 'node2', eligible: true },
    { node: 'w', eligible: false, reason: 'w is a witness: it runs no VMs' }];
  await moveButton().click();
  const form = moveForm();
  await form.waitFor();
  // Opening it stops the state view's reads (the dialog took the VM's line).
  assert.equal(await haView().count(), 0);
  assert.equal((await form.locator('[data-to="node2"]').textContent()).trim(), 'node2: holds the other copy now');
  assert.ok(await form.locator('[data-to="node2"] input').isDisabled());
  assert.equal((await form.locator('[data-to="w"]').textContent()).trim(), 'w: w is a witness: it runs no VMs');
  assert.ok(await form.locator('[data-to="w"] input').isDisabled());
  assert.equal((await form.locator('[data-no-target]').textContent()).trim(), 'No other node can take the copy now: the reason is given for each.');
  assert.ok(await form.getByRole('button', { name: 'Move replica' }).isDisabled());
  await shot('move-replica-none');
  // Cancel goes back to the disks' state.
  await form.getByRole('button', { name: 'Cancel' }).click();
  await haView().locator('table').waitFor();
  assert.equal(await moveForm().count(), 0);
  assert.equal(moveCalls().length, 0);
});

test('the Move replica dialog lists the nodes, posts {to}, follows the task, and the badges name the new node', async () => {
  state.haTargets = [
    { node: 'node2', eligible: true },
    { node: 'node3', eligible: false, reason: 'node3 has no bridge br0, which the VM uses: add it to node3\'s network or pick another node' },
    { node: 'node4', eligible: true },
    { node: 'node5', eligible: false, reason: 'node5 is offline (last seen 2 min ago)' },
    { node: 'node6', eligible: true },
    { node: 'w', eligible: false, reason: 'w is a witness: it runs no VMs' }];
  await moveButton().click();
  const form = moveForm();
  await form.waitFor();
  const to = (node) => form.locator(`[data-to="${node}"]`);
  assert.equal((await form.locator('legend').textContent()).trim(), 'New replica node');
  assert.deepEqual(await form.locator('input[name="to"]').evaluateAll((is) => is.map((i) => i.value)),
    ['node2', 'node3', 'node4', 'node5', 'node6', 'w']);
  // The node holding the copy now and the ineligible ones: disabled, with why.
  assert.equal((await to('node2').textContent()).trim(), 'node2: holds the other copy now');
  assert.equal((await to('node3').textContent()).trim(), 'node3: node3 has no bridge br0, which the VM uses: add it to node3\'s network or pick another node');
  assert.equal((await to('node5').textContent()).trim(), 'node5: node5 is offline (last seen 2 min ago)');
  for (const n of ['node2', 'node3', 'node5', 'w']) assert.ok(await to(n).locator('input').isDisabled(), n);
  for (const n of ['node4', 'node6']) {
    assert.ok(await to(n).locator('input').isEnabled(), n);
    assert.equal((await to(n).textContent()).trim(), `${n}: can take the copy`);
  }
  // Two nodes could: none is chosen for the user; the first one has the focus.
  assert.equal(await form.locator('input[name="to"]:checked').count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement?.value), 'node4');
  assert.equal(await form.locator('[data-no-target]').count(), 0);
  // What happens, plainly.
  const said = (await form.locator('[data-consequence]').textContent()).trim();
  assert.equal(said, 'The other copy of each of its 2 replicated disks (disk0 (tank/ha-disk0), disk1 (tank/ha-disk1)) moves from node2 '
    + 'to the chosen node: the whole disk is copied there over the replication network. Until that copy ends only this node\'s copy '
    + 'is current: no failover meanwhile, so if this node fails, ha cannot start on another node. node2\'s copy is not kept as a '
    + 'fallback: it is deleted as the move starts. ha may keep running.');
  await shot('move-replica-dialog');

  // Confirmed without a choice: asked for one, nothing sent.
  await form.getByRole('button', { name: 'Move replica' }).click();
  const error = form.locator('[data-field="to"] .field-error');
  await error.waitFor({ state: 'visible' });
  assert.equal((await error.textContent()).trim(), 'Choose the node to move the copy to.');
  assert.equal(moveCalls().length, 0);
  assert.equal(await page.evaluate(() => document.activeElement?.value), 'node4');

  // The node refuses node6 (no room): the reason under New replica node.
  state.moveRefusal = { status: 422, body: { code: 'invalid', field: 'to', message: 'node6 has 1.0 GiB free on its pools; the disks of ha need 12.0 GiB' } };
  await to('node6').locator('input').check();
  await form.getByRole('button', { name: 'Move replica' }).click();
  await until(() => moveCalls().length === 1, 10000, 'the move to node6 sent');
  assert.equal(moveCalls()[0], 'POST /api/v1/vms/ha/replication/move {"to":"node6"}');
  await page.waitForFunction(() => /Node6 has 1\.0 GiB free/.test(document.querySelector('form[data-form="move-replica"] [data-field="to"] .field-error')?.textContent || ''), null, { timeout: 10000 });
  assert.ok(await error.isVisible());
  assert.equal((await error.textContent()).trim(), 'Node6 has 1.0 GiB free on its pools; the disks of ha need 12.0 GiB.');
  assert.equal(await to('node6').locator('input').getAttribute('aria-invalid'), 'true');
  assert.equal(await to('node2').locator('input').getAttribute('aria-invalid'), null);
  assert.equal(await page.evaluate(() => document.activeElement?.value), 'node6');
  await shot('move-replica-error');

  // No quorum (503, no field): above the buttons, the field's error gone.
  state.moveRefusal = { status: 503, body: { code: 'no_quorum', message: 'no quorum: this node reaches ["node1"] of the voters ["node1", "node2", "node4"]' } };
  await to('node4').locator('input').check();
  await form.getByRole('button', { name: 'Move replica' }).click();
  const banner = form.locator('.form-error');
  await banner.waitFor({ state: 'visible' });
  assert.equal((await banner.textContent()).trim(), 'No quorum: this node reaches ["node1"] of the voters ["node1", "node2", "node4"].');
  assert.ok(await error.isHidden());

  // Accepted: the task's progress replaces the dialog; the VM goes on running.
  await form.getByRole('button', { name: 'Move replica' }).click();
  const line = card('ha').locator('.task-inline[data-task="42"]');
  await line.waitFor();
  assert.equal(moveCalls().length, 3);
  assert.equal(moveCalls().at(-1), 'POST /api/v1/vms/ha/replication/move {"to":"node4"}');
  assert.equal(await moveForm().count(), 0);
  progress(42, 5, 'running', 'cairn5 now points at node4; waiting for node4 to bring up its side');
  await line.locator('.pct', { hasText: '5 %' }).waitFor();
  progress(42, 45, 'running', 'sync to node4: 42.0 % of 256 MiB; until it ends only this node\'s copy is current');
  await line.locator('.pct', { hasText: '45 %' }).waitFor();
  assert.match(await line.textContent(), /Sync to node4: 42\.0 % of 256 MiB; until it ends only this node's copy is current\./);
  // Meanwhile the state view cannot be opened over the progress, said in words (after the
  // next reload); the badges still name node2 (the VM's record changes at the end).
  await card('ha').locator('[data-replicate-why="ha"]').waitFor({ timeout: 10000 });
  assert.equal((await card('ha').locator('[data-replicate-why="ha"]').textContent()).trim(), 'The replica is being moved: the progress is shown below.');
  assert.ok(await card('ha').locator('[data-action="Replication"]').isDisabled());
  assert.equal(await card('ha').getAttribute('data-state'), 'running');
  assert.deepEqual((await card('ha').locator('[data-disks] [data-replicated]').allTextContents()).map((t) => t.trim()),
    ['replicated on node2', 'replicated on node2']);
  await shot('move-replica-progress');

  // Done: the record names node4; the disks' state opens under the task's last line and the
  // list is read again.
  const ha = state.vms.find((v) => v.name === 'ha');
  ha.disks = [haDisk(0, 'node4'), haDisk(1, 'node4')];
  state.haReplication = [0, 1].map((i) => replicaState(`disk${i}`, `cairn${5 + i}`, { replica: 'node4', role: 'Primary', peer_role: 'Secondary' }));
  progress(42, 100, 'succeeded', 'VM ha: replica moved from node2 to node4; node2 removes its old copy');
  await line.locator('.pct', { hasText: '100 %' }).waitFor();
  assert.match(await line.textContent(), /VM ha: replica moved from node2 to node4; node2 removes its old copy\./);
  await haView().locator('table').waitFor({ timeout: 10000 });
  assert.ok(await line.isVisible());
  assert.deepEqual(await haView().locator('tbody tr td:nth-child(3)').allTextContents(), ['node4', 'node4']);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-vm="ha"] [data-disks] [data-replicated]')]
    .every((b) => b.textContent.trim() === 'replicated on node4'), null, { timeout: 10000 });
  assert.equal(await card('ha').locator('[data-disks] [data-replicated]').count(), 2);
  await card('ha').locator('[data-replicate-why]').waitFor({ state: 'detached', timeout: 10000 });
  assert.ok(await card('ha').locator('[data-action="Replication"]').isEnabled());
  assert.ok(await moveButton().isEnabled());
  await shot('move-replica-done');

  // Opened again, the dialog lists node4 as the holder now.
  await moveButton().click();
  await moveForm().waitFor();
  assert.equal((await moveForm().locator('[data-to="node4"]').textContent()).trim(), 'node4: holds the other copy now');
  assert.ok(await moveForm().locator('[data-to="node4"] input').isDisabled());
  assert.ok(await moveForm().locator('[data-to="node2"] input').isEnabled());
  // Only node2 and node6 could: neither chosen for the user.
  assert.equal(await moveForm().locator('input[name="to"]:checked').count(), 0);
  await moveForm().getByRole('button', { name: 'Cancel' }).click();
  await haView().locator('table').waitFor();
});

test('on a standalone node Move replica… is disabled with the reason', async () => {
  state.cluster = { mode: 'standalone', this_node: null, cluster: null, quorum: null, nodes: [], failover: null };
  await page.goto(`${ORIGIN}/`);
  await card('ha').locator('[data-action="Replication"]').click();
  await haView().locator('table').waitFor();
  assert.ok(await moveButton().isDisabled());
  const why = card('ha').locator('[data-move-why="ha"]');
  assert.equal((await why.textContent()).trim(), 'This node is not in a cluster: the replica can be moved only between members of one.');
  assert.equal(await moveButton().getAttribute('aria-describedby'), 'move-replica-why-ha');
});
