// Browser test of vms.js (with style.css): renders the VMs page in Debian's Chromium against a
// scripted API (requests answered by the test, task progress sent on the event stream) and
// checks the list with states, live statistics (CPU %, memory, pool space) and resource use,
// the create wizard (a missing name caught
// before leaving the step; the node's 422 sent back to the step and field it names; the VM
// created as a task; an installer from the chosen pool's image library sent as a SATA CD-ROM
// booted first), an action followed through its task progress across the page's
// periodic reloads, and the live serial console. Keeps desktop and 360 px phone screenshots.
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
};

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
  if (p === '/api/v1/vms/web/targets') {
    return json(200, { vm: 'web', bridges: ['br0'], targets: [
      { node: 'node2', eligible: true },
      { node: 'node3', eligible: false, reason: 'node3 has no bridge br0, which the VM uses: add it to node3\'s network or pick another node' },
      { node: 'w', eligible: false, reason: 'w is a witness: it runs no VMs' }] });
  }
  if (p === '/api/v1/vms/db/targets') return json(200, { vm: 'db', bridges: ['br0'], targets: [] });
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
